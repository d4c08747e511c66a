from django.urls import include, path

from tkoauth import stats

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("test/clients", stats.create_client),
    path("test/stats", stats.get_stats),
]
