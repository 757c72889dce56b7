"""Jobs, usage and webhooks now belong to cutouts/, usage/ and webhooks/ (same tables): state only."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
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
    ]
