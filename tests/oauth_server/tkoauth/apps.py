from django.apps import AppConfig


class TkOauthConfig(AppConfig):
    name = "tkoauth"

    def ready(self):
        from tkoauth import stats

        stats.install_revocation_counter()
