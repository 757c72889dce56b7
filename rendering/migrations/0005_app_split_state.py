"""Jobs, usage and webhooks now belong to cutouts/, usage/ and webhooks/ (same tables): state only."""

from django.db import migrations

MOVED = {"bgremovejob": "cutouts", "usagedaily": "usage", "webhook": "webhooks", "webhookdelivery": "webhooks"}


def _content_types_move(apps, schema_editor):
    # Permissions granted on these models (the account managers' group, users) and admin log
    # entries point at their content type: it moves with the model rather than being recreated.
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, app in MOVED.items():
        if not ContentType.objects.filter(app_label=app, model=model).exists():
            ContentType.objects.filter(app_label="rendering", model=model).update(app_label=app)


def _content_types_return(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, app in MOVED.items():
        if not ContentType.objects.filter(app_label="rendering", model=model).exists():
            ContentType.objects.filter(app_label=app, model=model).update(app_label="rendering")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("rendering", "0004_bgremovejob_crashes_retries_run_after"),
        ("cutouts", "0001_initial"),
        ("usage", "0001_initial"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name="webhookdelivery",
                    name="job",
                ),
                migrations.RemoveField(
                    model_name="usagedaily",
                    name="source",
                ),
                migrations.RemoveField(
                    model_name="webhook",
                    name="account",
                ),
                migrations.RemoveField(
                    model_name="webhookdelivery",
                    name="webhook",
                ),
                migrations.DeleteModel(
                    name="BgRemoveJob",
                ),
                migrations.DeleteModel(
                    name="UsageDaily",
                ),
                migrations.DeleteModel(
                    name="Webhook",
                ),
                migrations.DeleteModel(
                    name="WebhookDelivery",
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(_content_types_move, _content_types_return),
    ]
