from django.core.management.base import BaseCommand

from rendering.params_table import DOC, params_table, params_table_in_doc


class Command(BaseCommand):
    help = "Print (or, with --write, put into docs/rendering.md) the table of every imgix parameter."

    def add_arguments(self, parser):
        parser.add_argument("--write", action="store_true", help="Rewrite the table in docs/rendering.md.")

    def handle(self, *args, write=False, **options):
        if not write:
            self.stdout.write(params_table())
            return
        DOC.write_text(params_table_in_doc(DOC.read_text()))
        self.stdout.write(f"Wrote the table into {DOC}.")
