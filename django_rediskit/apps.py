from django.apps import AppConfig


class RedisKitConfig(AppConfig):
    name = "django_rediskit"
    verbose_name = "Redis kit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_rediskit import checks  # noqa: F401  (registers the system checks)
        from django_rediskit.sessions import admin as sessions_admin
        from django_rediskit.sessions import checks as sessions_checks  # noqa: F401
        from django_rediskit.sessions import receivers as sessions_receivers

        sessions_receivers.connect()
        sessions_admin.install()
