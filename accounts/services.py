"""Writes and workflows for accounts and the people who manage them."""

from django.contrib.auth.models import Group, Permission

ACCOUNT_MANAGERS_GROUP = "Account managers"

# What an account manager may do in the admin: see and change accounts, sources and jobs'
# state, read the audit history; never users, groups or permissions.
ACCOUNT_MANAGER_PERMISSIONS = [
    ("accounts", "view_account"),
    ("accounts", "change_account"),
    ("accounts", "view_historicalaccount"),
    ("sources", "view_source"),
    ("sources", "change_source"),
    ("sources", "view_historicalsource"),
    ("rendering", "view_bgremovejob"),
]


def account_managers_group_sync() -> Group:
    group, _ = Group.objects.get_or_create(name=ACCOUNT_MANAGERS_GROUP)
    perms = []
    for app_label, codename in ACCOUNT_MANAGER_PERMISSIONS:
        perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if perm is not None:
            perms.append(perm)
    group.permissions.add(*perms)
    return group


def account_manager_create(*, username: str, password: str, email: str = ""):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username=username, password=password, email=email, is_staff=True
    )
    user.groups.add(account_managers_group_sync())
    return user
