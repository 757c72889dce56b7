"""The models of cutouts/, moved from rendering/ with their tables: state only, no SQL (rendering 0005 moves
their content types)."""

import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("rendering", "0004_bgremovejob_crashes_retries_run_after"),
        ("sources", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="BgRemoveJob",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("path", models.CharField(max_length=1024)),
                        ("model", models.CharField(max_length=32)),
                        ("refinement", models.CharField(default="none", max_length=16)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                db_index=True,
                                default="queued",
                                max_length=8,
                            ),
                        ),
                        ("origin_version", models.CharField(blank=True, max_length=200)),
                        ("cutout_name", models.CharField(blank=True, max_length=512)),
                        ("width", models.PositiveIntegerField(blank=True, null=True)),
                        ("height", models.PositiveIntegerField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("enqueued_at", models.DateTimeField(blank=True, null=True)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("fetch_seconds", models.FloatField(blank=True, null=True)),
                        ("inference_seconds", models.FloatField(blank=True, null=True)),
                        ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                        ("claimed_by", models.CharField(blank=True, max_length=300)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("crashes", models.PositiveIntegerField(default=0)),
                        ("retries", models.PositiveIntegerField(default=0)),
                        ("run_after", models.DateTimeField(blank=True, null=True)),
                        ("inferences", models.PositiveIntegerField(default=0)),
                        ("error_status", models.PositiveSmallIntegerField(blank=True, null=True)),
                        ("error_code", models.CharField(blank=True, max_length=64)),
                        ("error_message", models.CharField(blank=True, max_length=500)),
                        ("note", models.CharField(blank=True, max_length=300)),
                        (
                            "source",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="bg_remove_jobs",
                                to="sources.source",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "rendering_bgremovejob",
                        "ordering": ["-created_at"],
                        "indexes": [
                            models.Index(
                                fields=["source", "status", "created_at"], name="rendering_b_source__669a1a_idx"
                            ),
                            models.Index(fields=["started_at"], name="bg_remove_job_started_at"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("source", "path", "model", "refinement"), name="one_bg_remove_job_per_image"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
