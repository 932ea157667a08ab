from django.apps import AppConfig


class RedisKitConfig(AppConfig):
    name = "django_rediskit"
    verbose_name = "Redis kit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_rediskit import checks  # noqa: F401  (registers the system checks)
        from django_rediskit.inspector import checks as inspector_checks  # noqa: F401
        from django_rediskit.invalidation.registry import connect_registered
        from django_rediskit.throttling import checks as throttling_checks  # noqa: F401

        connect_registered()
