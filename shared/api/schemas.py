"""The HTTP contract as pydantic models: they validate requests, shape answers and feed OpenAPI."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from shared.api.ids import ID_PATTERN
from shared.domain.auth import load_public_key
from shared.domain.conversation import MAX_EVENT_ID_LENGTH, EventType, State
from shared.domain.errors import FieldProblem, InvalidInput
from shared.domain.links import MAX_QUICK_REPLY_LENGTH
from shared.domain.urls import check_url
from shared.wire.conversations import DEFER, Model, UtcDateTime
from shared.wire.conversations import ConversationView as ConversationView

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def _printable(value: str) -> str:
    """`value` unless it holds a control character or an unpaired surrogate (ValueError).

    Neither belongs in a name or an id, and both are costly or invalid where the value is
    stored: JSON escapes a control character as six characters, and an unpaired surrogate
    (only reachable through a `\\uD8xx` escape) is not text at all.
    """
    if any(
        ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or 0xD800 <= ord(ch) <= 0xDFFF for ch in value
    ):
        raise ValueError("must not contain control characters or unpaired surrogates")
    return value


# Names and ids the app keeps (issuer, kid, eventId, customerId) are printable text.
Printable = AfterValidator(_printable)


class RequestModel(Model):
    """A request body: unknown members are refused so typos do not pass silently."""

    # Only the camelCase wire names are accepted: `time_limit_minutes` is an unknown member.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, extra="forbid", strict=True, **DEFER
    )


# --- widget settings -------------------------------------------------------------------


class PublicKeyModel(RequestModel):
    kid: Annotated[str, StringConstraints(min_length=1, max_length=128), Printable]
    pem: Annotated[str, StringConstraints(min_length=1, max_length=16384)]

    @field_validator("pem")
    @classmethod
    def _pem_loads(cls, pem: str) -> str:
        load_public_key(pem)
        return pem


class AuthenticationModel(RequestModel):
    issuer: Annotated[str, StringConstraints(min_length=1, max_length=2048), Printable]
    audience: Annotated[str, StringConstraints(min_length=1, max_length=2048), Printable] | None = (
        None
    )
    public_keys: Annotated[list[PublicKeyModel], Field(min_length=1, max_length=10)]

    @field_validator("public_keys")
    @classmethod
    def _kids_unique(cls, keys: list[PublicKeyModel]) -> list[PublicKeyModel]:
        kids = [key.kid for key in keys]
        if len(set(kids)) != len(kids):
            raise ValueError("each kid may appear only once")
        return keys


class WidgetSettingsBody(RequestModel):
    """A widget's settings as an admin writes them (PUT replaces; omitted fields default)."""

    widget_id: Id | None = None
    reconnect_enabled: StrictBool = False
    time_limit_minutes: Annotated[StrictInt, Field(ge=1, le=1440)] = 10
    portal_url: Annotated[str, Field(max_length=2048)] | None = None
    # "" means no redirect, as admins clear the field in a form.
    redirect_url: Annotated[str, Field(max_length=2048)] | None = None
    authentication: AuthenticationModel | None = None
    updated_at: Annotated[str | None, Field(description="Read-only; ignored when sent back.")] = (
        None
    )

    @field_validator("portal_url", "redirect_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return check_url(value) if value else value

    @model_validator(mode="after")
    def _portal_url_when_enabled(self) -> WidgetSettingsBody:
        if self.reconnect_enabled and not self.portal_url:
            # Not a ValueError: pydantic would lose the field name on a model-level error.
            raise InvalidInput(
                (FieldProblem("portalUrl", "is required when reconnectEnabled is true"),)
            )
        return self


class PublicKeyView(Model):
    kid: str
    pem: str


class AuthenticationView(Model):
    issuer: str
    audience: str | None
    public_keys: list[PublicKeyView]


class WidgetSettingsView(Model):
    widget_id: str
    reconnect_enabled: bool
    time_limit_minutes: int
    portal_url: str | None
    redirect_url: str | None
    authentication: AuthenticationView | None
    updated_at: UtcDateTime | None


class WidgetSettingsList(Model):
    value: list[WidgetSettingsView]
    next_link: str | None


# --- conversations (platform) ------------------------------------------------------------


class RegisterConversationBody(RequestModel):
    widget_id: Id
    agent_id: Id | None = None
    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None


class EventBody(Model):
    """A lifecycle event; platforms may send more members, which are ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, strict=True, **DEFER
    )

    type: EventType
    event_id: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_EVENT_ID_LENGTH), Printable]
        | None
    ) = None
    agent_id: Id | None = None

    @model_validator(mode="after")
    def _agent_for_assignment(self) -> EventBody:
        if self.type is EventType.AGENT_ASSIGNED and self.agent_id is None:
            raise InvalidInput((FieldProblem("agentId", "is required for agent_assigned"),))
        return self

    @field_validator("type", mode="before")
    @classmethod
    def _type_from_text(cls, value: object) -> object:
        # Strict mode would refuse the plain JSON string for an enum.
        if isinstance(value, str):
            try:
                return EventType(value)
            except ValueError:
                raise ValueError(
                    "must be one of: " + ", ".join(event.value for event in EventType)
                ) from None
        return value


class QuickReplyBody(RequestModel):
    text: Annotated[str, StringConstraints(max_length=MAX_QUICK_REPLY_LENGTH)]


class QuickReplyView(Model):
    text: str


class ReconnectLinkView(Model):
    reconnect_url: str | None


class HeldConversationView(Model):
    conversation_id: str
    customer_connected: bool
    reconnect_deadline: UtcDateTime | None


class CapacityView(Model):
    agent_id: str
    held: int
    conversations: list[HeldConversationView]


# --- widget (customer) ---------------------------------------------------------------------


class ReconnectContextView(Model):
    is_reconnect_available: bool
    reconnect_id: str | None
    conversation_id: str | None
    expires_at: UtcDateTime | None
    redirect_url: str | None


class ContinueView(Model):
    conversation_id: str
    state: State
    agent_id: str | None
    same_agent: bool
    reconnected_at: UtcDateTime


class ReconnectableView(Model):
    reconnect_id: str
    conversation_id: str
    expires_at: UtcDateTime | None
    disconnected_at: UtcDateTime | None


# --- operations and errors -----------------------------------------------------------------


class HealthView(Model):
    status: Literal["ok", "unavailable"]


class ProblemFieldError(Model):
    field: str
    message: str


class Problem(Model):
    """RFC 9457 problem details; `state` and `redirectUrl` appear on 409 and 410."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] | None = None
    state: State | None = None
    redirect_url: str | None = None


# --- Omnichannel chat SDK (docs/omnichannel.md) ---------------------------------------------
# Omnichannel's wire names, which Microsoft's SDK reads verbatim: PascalCase, msdyn_*
# columns of Dataverse with "true"/"false" strings, lower-case record fields.


class OmnichannelModel(BaseModel):
    """A model whose wire names are Omnichannel's, spelled out field by field."""

    model_config = ConfigDict(populate_by_name=True, **DEFER)


class LiveChatWidgetColumns(OmnichannelModel):
    """The widget's columns the SDK's initialize() reads (`LiveWSAndLiveChatEngJoin`)."""

    widget_app_id: str = Field(alias="msdyn_widgetappid")
    enable_chat_reconnect: Literal["true", "false"] = Field(alias="msdyn_enablechatreconnect")
    conversation_mode: str = Field(alias="msdyn_conversationmode")
    prechat_enabled: Literal["false"] = Field(alias="msdyn_prechatenabled")
    attachments_for_customers: Literal["false"] = Field(
        alias="msdyn_enablefileattachmentsforcustomers"
    )
    attachments_for_agents: Literal["false"] = Field(alias="msdyn_enablefileattachmentsforagents")
    calling_options: str = Field(alias="msdyn_callingoptions")


class ChatWidgetLanguage(OmnichannelModel):
    locale_id: str = Field(alias="msdyn_localeid")


class DataMaskingSetting(OmnichannelModel):
    mask_for_customer: bool = Field(alias="msdyn_maskforcustomer")


class DataMaskingInfo(OmnichannelModel):
    setting: DataMaskingSetting
    data_masking_rules: dict[str, str] = Field(alias="dataMaskingRules")


class LiveChatAuthSettings(OmnichannelModel):
    """Present on authenticated widgets: it is what makes the SDK send the customer's token."""

    authentication_type: str = Field(alias="msdyn_authenticationtype")
    javascript_client_function: str = Field(alias="msdyn_javascriptclientfunction")
    public_key_url: str = Field(alias="msdyn_publickeyurl")


class LiveChatConfigView(OmnichannelModel):
    """The live chat config `initialize()` needs; everything not about reconnects is off."""

    live_chat_version: Literal[2] = Field(alias="LiveChatVersion")
    widget: LiveChatWidgetColumns = Field(alias="LiveWSAndLiveChatEngJoin")
    language: ChatWidgetLanguage = Field(alias="ChatWidgetLanguage")
    data_masking: DataMaskingInfo = Field(alias="DataMaskingInfo")
    auth_settings: LiveChatAuthSettings | None = Field(
        default=None, alias="LiveChatConfigAuthSettings"
    )


class ReconnectAvailabilityView(OmnichannelModel):
    """Omnichannel's reconnect availability: the link's reconnect context, renamed."""

    reconnect_id: str | None = Field(alias="reconnectId")
    is_reconnect_available: bool = Field(alias="isReconnectAvailable")
    reconnect_redirection_url: str | None = Field(alias="reconnectRedirectionURL")


class ReconnectableChatView(OmnichannelModel):
    """Omnichannel's reconnect mapping record (the SDK reads `reconnectid`) plus the prompt's
    own answer in this service's names."""

    reconnectid: str
    orgid: str
    widgetappid: str
    conversation_id: str = Field(alias="conversationId")
    expires_at: UtcDateTime | None = Field(alias="expiresAt")
    disconnected_at: UtcDateTime | None = Field(alias="disconnectedAt")
