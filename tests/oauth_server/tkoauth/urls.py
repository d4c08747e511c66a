from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from tkoauth import stats

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("test/clients", csrf_exempt(stats.create_client)),
    path("test/stats", stats.get_stats),
    path("test/login", csrf_exempt(stats.login_view)),
]
