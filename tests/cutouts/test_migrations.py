"""The app split's migrations: the models change app, their rows, tables and permissions stay."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("rendering", "0004_bgremovejob_crashes_retries_run_after"), ("cutouts", None), ("usage", None),
          ("webhooks", None)]


def migrate(targets):
    """Migrates to `targets` (other apps to their latest) and returns the models as they are then."""
    executor = MigrationExecutor(connection)
    apps = {app for app, _ in targets}
    nodes = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in apps]
    executor.migrate(targets)
    return executor.loader.project_state(nodes + [node for node in targets if node[1]]).apps


@pytest.mark.django_db(transaction=True)
def test_rows_and_granted_permissions_survive_the_move():
    old = migrate(BEFORE)
    account = old.get_model("accounts", "Account").objects.create(name="A", slug="a")
    source = old.get_model("sources", "Source").objects.create(account=account, slug="s", kind="web",
                                                               base_url="https://example.com/")
    job = old.get_model("rendering", "BgRemoveJob").objects.create(source=source, path="x.jpg", model="u2netp")
    webhook = old.get_model("rendering", "Webhook").objects.create(account=account, url="https://e.com/h",
                                                                   secret="s", events=["job.done"])
    old.get_model("rendering", "WebhookDelivery").objects.create(webhook=webhook, event="job.done", job=job,
                                                                 payload={})
    old.get_model("rendering", "UsageDaily").objects.create(source=source, day="2026-12-01", renders=7)
    ContentType = old.get_model("contenttypes", "ContentType")
    Permission, Group = old.get_model("auth", "Permission"), old.get_model("auth", "Group")
    job_type, _ = ContentType.objects.get_or_create(app_label="rendering", model="bgremovejob")
    perm, _ = Permission.objects.get_or_create(content_type=job_type, codename="view_bgremovejob",
                                               defaults={"name": "Can view bg remove job"})
    Group.objects.create(name="probe").permissions.add(perm)

    new = migrate(_leaves())

    Job = new.get_model("cutouts", "BgRemoveJob")
    assert Job._meta.db_table == "rendering_bgremovejob"
    assert Job.objects.get().path == "x.jpg"
    assert new.get_model("webhooks", "WebhookDelivery").objects.get().job_id == job.pk
    assert new.get_model("usage", "UsageDaily").objects.get().renders == 7
    granted = new.get_model("auth", "Group").objects.get(name="probe").permissions.get()
    assert (granted.content_type.app_label, granted.codename) == ("cutouts", "view_bgremovejob")


def _leaves():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()
