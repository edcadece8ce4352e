"""What an org may set in its policy, checked once for the API and the CLI: a typo never silently does nothing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_RETENTION_DAYS = 365  # the privacy policy's ceiling: an org may shorten it, never extend it
Kind = Literal["email_out", "email_in", "meeting", "call"]


class PolicyChanges(BaseModel):
    """Keys to set in an org's policy; unknown keys are refused, omitted keys keep their value."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] | None = Field(default=None, description="allowlist of sources; absent: every source")
    retention_days: int | None = Field(default=None, ge=0, le=MAX_RETENTION_DAYS)
    disconnect_grace_days: int | None = Field(default=None, ge=0, le=MAX_RETENTION_DAYS)
    purge_on_disconnect: bool | None = None
    keep_subjects: bool | None = None
    region: str | None = Field(default=None, pattern="^[A-Z]{2}$", description="default phone region (ISO 3166)")
    weights: dict[Kind, Annotated[float, Field(ge=0)]] | None = None
    half_life_days: float | None = Field(default=None, gt=0)
    strength_scale: float | None = Field(default=None, gt=0)

    def applied_to(self, policy: dict[str, Any]) -> dict[str, Any]:
        """A new policy: these changes over `policy`."""
        return policy | self.model_dump(exclude_none=True)
