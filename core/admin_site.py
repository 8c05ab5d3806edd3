"""The staff admin under Docent's name: a site of our own, the default one for every admin.py."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class DocentAdminSite(admin.AdminSite):
    site_header = "Docent"
    site_title = "Docent admin"
    index_title = "Docent administration"


class DocentAdminConfig(AdminConfig):
    # `admin.site` and `@admin.register` resolve to this site, so no admin.py changes.
    default_site = "core.admin_site.DocentAdminSite"
