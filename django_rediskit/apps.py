from django.apps import AppConfig, apps


class RedisKitConfig(AppConfig):
    name = "django_rediskit"
    verbose_name = "Redis kit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_rediskit import checks  # noqa: F401  (registers the system checks)
        from django_rediskit.inspector import checks as inspector_checks  # noqa: F401
        from django_rediskit.invalidation.registry import connect_registered
        from django_rediskit.sessions import checks as sessions_checks  # noqa: F401
        from django_rediskit.throttling import checks as throttling_checks  # noqa: F401

        connect_registered()
        from django_rediskit.metrics import setup as metrics_setup

        metrics_setup.configure()

        from django_rediskit.inspector import feature_panels

        feature_panels.install()

        if apps.is_installed("django.contrib.auth"):
            from django_rediskit.sessions import receivers as sessions_receivers

            sessions_receivers.connect()
            from django_rediskit.throttling import login as login_limits

            login_limits.connect()
            if apps.is_installed("django.contrib.admin"):
                from django_rediskit.sessions import admin as sessions_admin

                sessions_admin.install()
