"""What this app does when other apps tell it something: a job failed, so the charges held on it are given back."""

from django.dispatch import receiver

from cutouts.signals import bg_remove_job_ended
from removebg_api.credits import call_holds_release_failed


@receiver(bg_remove_job_ended, dispatch_uid="removebg_job_ended")
def job_ended(sender, job_id, event, **kwargs):
    if event == "job.failed":
        call_holds_release_failed(job_id=job_id)
