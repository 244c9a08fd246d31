"""Wire formats of registry accounts and their holdings (`/v1/accounts`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ledger.certificates.devices import MAX_NAME_CHARS, AccountRecord
from ledger.times import format_utc


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class AccountCreate(_Wire):
    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="Unique within the organisation, e.g. `trading` or `claims`.",
    )


class AccountBody(_Wire):
    id: str = Field(description="UUID; other organisations transfer to it by this id.")
    organisation_id: str = Field(alias="organisationId")
    name: str
    opened_at: str = Field(alias="openedAt")
    log_index: int = Field(alias="logIndex", description="The `account.opened/1` leaf.")

    @classmethod
    def from_record(cls, account: AccountRecord) -> AccountBody:
        return cls(
            id=account.account_id,
            organisation_id=account.organisation_id,
            name=account.name,
            opened_at=format_utc(account.opened_at),
            log_index=account.log_index,
        )


class StatusCounts(_Wire):
    active: int = 0
    split: int = 0
    retired: int = 0
    expired: int = 0
    withdrawn: int = 0


class Holdings(_Wire):
    active_wh: int = Field(alias="activeWh", description="Wh of active certificates held.")
    active_gec: str = Field(alias="activeGec", description="The same in GEC (1 GEC = 1 MWh).")
    retired_wh: int = Field(alias="retiredWh", description="Wh retired from this account.")
    retired_gec: str = Field(alias="retiredGec")
    certificates: StatusCounts = Field(
        description="Certificates in the account by status (a split one holds no Wh)."
    )


class AccountDetail(AccountBody):
    holdings: Holdings


class AccountList(_Wire):
    accounts: list[AccountBody] = Field(description="Ordered by name.")
