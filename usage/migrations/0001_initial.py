"""The models of usage/, moved from rendering/ with their tables: state only, no SQL (rendering 0005 moves
their content types)."""

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
                    name="UsageDaily",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("day", models.DateField()),
                        ("renders", models.PositiveBigIntegerField(default=0)),
                        ("bytes_served", models.PositiveBigIntegerField(default=0)),
                        ("cache_hits", models.PositiveBigIntegerField(default=0)),
                        (
                            "source",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="usage_days",
                                to="sources.source",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "rendering_usagedaily",
                        "ordering": ["-day"],
                        "constraints": [
                            models.UniqueConstraint(fields=("source", "day"), name="one_usage_row_per_source_day")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
