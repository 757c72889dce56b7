"""remove.bg credits: unmetered by default; a metered account's charge taken atomically, given back when free."""

from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account
from cutouts.models import BgRemoveJob
from removebg_api.errors import InsufficientCreditsError
from removebg_api.models import Call, CreditAccount
from removebg_api.options import PREVIEW_CREDITS, Options, size_credits
from sources.models import Upload


@dataclass(frozen=True)
class Charge:
    credits: Decimal
    free: bool
    credit_id: int
    # Nothing taken: the call may only be the same call again as one whose charge is held
    # (call_hold), which that charge pays for.
    on_hold: bool = False
    # False for an unmetered account: `credits` is the call's price as remove.bg computes it
    # (X-Credits-Charged), reported and recorded, never taken off nor given back.
    metered: bool = True
    # The size paid for, when it is not the options' (size=auto on a balance short of its full size).
    size: str | None = None


def credit_account_ensure(*, account: Account) -> CreditAccount:
    """The account's credits, made on its first call: unmetered unless REMOVEBG_DEFAULT_CREDITS is set."""
    default = settings.REMOVEBG_DEFAULT_CREDITS
    credit, _ = CreditAccount.objects.get_or_create(
        account=account, defaults={"credits": None if default is None else Decimal(str(default)),
                                   "free_calls": settings.REMOVEBG_FREE_CALLS})
    return credit


def insufficient_credits(*, credit: CreditAccount) -> InsufficientCreditsError:
    """The 402 of a metered account, saying where its credits come from."""
    page = reverse("admin:removebg_api_creditaccount_change", args=[credit.pk])
    left = credits_left(credit=credit)  # None when an operator unmetered the account meanwhile.
    return InsufficientCreditsError(detail=(
        f"This account's remove.bg calls are metered: {Decimal(0) if left is None else left.normalize():f} credits and "
        f"{free_calls_left(credit=credit)} free preview calls are left this month. An operator grants credits "
        f"in the admin (remove.bg credits: {page}), or empties "
        "the account's credits there to make it unmetered; REMOVEBG_DEFAULT_CREDITS is what new accounts start "
        "with (unset: unmetered)."))


def _this_month():
    return timezone.now().date().replace(day=1)


def free_calls_left(*, credit: CreditAccount) -> int:
    used = credit.free_used if credit.free_month == _this_month() else 0
    return max(0, credit.free_calls - used)


def credits_left(*, credit: CreditAccount) -> Decimal | None:
    """Granted less charged; None for an unmetered account."""
    return None if credit.credits is None else credit.credits - credit.charged


def credits_payable_check(*, account: Account) -> None:
    """402 before the body is read when the account could pay for no call at all (no free call
    left this month, less than a preview's credits, no held charge)."""
    credit = credit_account_ensure(account=account)
    if not credit.metered:
        return
    if (free_calls_left(credit=credit) == 0 and credits_left(credit=credit) < Decimal(PREVIEW_CREDITS)
            and not Call.objects.filter(account=account, held=True).exists()):
        raise insufficient_credits(credit=credit)


def credits_take(*, account: Account, options: Options) -> Charge:
    """The call's charge, taken now, before anything is downloaded or stored: a free call while
    the month's last (previews only), else its credits, or 402. Each is one conditional UPDATE,
    so concurrent calls of one account can never take more than there is. `size=auto` is the
    highest size the account can pay (remove.bg: "based on image size and available credits"):
    its full size, else a preview; the charge names the size paid (Charge.size). An unmetered
    account's call is charged its price, taken from nothing."""
    credit = credit_account_ensure(account=account)
    if not credit.metered:
        return Charge(Decimal(options.credits), False, credit.pk, metered=False)
    sizes = [options.size] + (["preview"] if options.auto and options.size != "preview" else [])
    for size in sizes:
        charge = _take(credit, size)
        if charge is not None:
            return charge
    # A client sending again a call answered 429 has paid already: its held charge pays, once
    # the call is found to be for the same job (call_hold_settle).
    for size in sizes:
        if any(_covers(held, replace(options, size=size)) for held in Call.objects.filter(account=account, held=True)):
            return Charge(Decimal(0), False, credit.pk, on_hold=True, size=size)
    credit.refresh_from_db()
    raise insufficient_credits(credit=credit)


def _take(credit: CreditAccount, size: str) -> Charge | None:
    if size == "preview":
        month = _this_month()
        # A new month starts the count again; a second process starting it too finds it started.
        CreditAccount.objects.filter(pk=credit.pk).exclude(free_month=month).update(free_month=month, free_used=0)
        if CreditAccount.objects.filter(pk=credit.pk, free_month=month, free_used__lt=F("free_calls")).update(
                free_used=F("free_used") + 1):
            return Charge(Decimal(0), True, credit.pk, size=size)
    cost = Decimal(size_credits(size))
    if CreditAccount.objects.filter(pk=credit.pk, credits__gte=F("charged") + cost).update(
            charged=F("charged") + cost):
        return Charge(cost, False, credit.pk, size=size)
    return None


def _covers(held: Call, options: Options) -> bool:
    return options.size == "preview" if held.free else held.credits >= Decimal(options.credits)


def credits_give_back(*, charge: Charge) -> None:
    """Undoes credits_take for a call that costs nothing (refused before its job, or answered
    before its result)."""
    if not charge.metered:
        return  # Nothing was taken.
    if charge.free:
        CreditAccount.objects.filter(pk=charge.credit_id, free_month=_this_month(), free_used__gt=0).update(
            free_used=F("free_used") - 1)
    elif charge.credits:
        CreditAccount.objects.filter(pk=charge.credit_id).update(charged=F("charged") - charge.credits)


def call_record(*, account: Account, job: BgRemoveJob, upload: Upload, options: Options, charge: Charge,
                width: int = 0, height: int = 0, error_code: str = "") -> Call:
    """The call's record (admin: remove.bg calls): a result, or the error of a call charged
    because the model ran for it."""
    return Call.objects.create(account=account, job=job, path=upload.path, size=options.size,
                               credits=charge.credits, free=charge.free, metered=charge.metered, width=width,
                               height=height, error_code=error_code)


def call_hold(*, account: Account, job: BgRemoveJob, upload: Upload, options: Options, charge: Charge,
              error_code: str) -> bool:
    """Keeps the charge of a call answered before its result (the model will run for it) as a
    held call; False, and nothing kept, when the account already holds one on this job (the
    same call sent again while it runs), so a client's retries hold one charge."""
    try:
        with transaction.atomic():
            Call.objects.create(account=account, job=job, path=upload.path, size=options.size,
                                credits=charge.credits, free=charge.free, metered=charge.metered, width=0,
                                height=0, error_code=error_code, held=True)
    except IntegrityError:
        return False
    return True


def call_hold_check(*, account: Account, upload: Upload, options: Options, charge: Charge) -> None:
    """402, before any job is asked for, for a call let through on a held charge
    (Charge.on_hold) that is not for this image."""
    if charge.on_hold and not any(_covers(held, options) for held in
                                  Call.objects.filter(account=account, path=upload.path, held=True)):
        raise insufficient_credits(credit=CreditAccount.objects.get(pk=charge.credit_id))


def call_hold_settle(*, account: Account, job: BgRemoveJob, options: Options, charge: Charge) -> Charge:
    """What a call charged for this job bills, the account's held charge on the job settled: a
    call that paid its own charge takes the hold's place (given back: the earlier 429 and this
    answer are one bill); a call let through on the hold is billed the hold."""
    for held in Call.objects.filter(account=account, job=job, held=True):
        if charge.on_hold and _covers(held, options):
            # Deleted first, so a hold pays for one call however many processes race for it.
            if Call.objects.filter(pk=held.pk, held=True).delete()[0]:
                return Charge(held.credits, held.free, charge.credit_id, metered=held.metered)
            continue
        _hold_give_back(held)
    if charge.on_hold:
        # The hold went meanwhile: its job failed, or a call took it.
        raise insufficient_credits(credit=CreditAccount.objects.get(pk=charge.credit_id))
    return charge


def call_holds_release_failed(*, job_id) -> None:
    """Every charge held on a job that failed is given back: the model made nothing for it."""
    for held in Call.objects.filter(job_id=job_id, held=True, job__status=BgRemoveJob.Status.FAILED):
        _hold_give_back(held)


def _hold_give_back(held: Call) -> None:
    # Deleted first, so a hold is given back once however many processes race for it.
    if Call.objects.filter(pk=held.pk, held=True).delete()[0]:
        credit = CreditAccount.objects.filter(account_id=held.account_id).values_list("pk", flat=True).first()
        credits_give_back(charge=Charge(held.credits, held.free, credit, metered=held.metered))
