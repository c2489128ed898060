"""Gateway data: the workspace vault (data keys, provider credentials) and gateway keys.

Secrets are stored only encrypted (see `core/vault.py`); gateway keys only as a keyed hash.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from workspaces.models import Agent, Member, TenantModel


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Google Gemini"
    AZURE_OPENAI = "azure-openai", "Azure OpenAI"
    MISTRAL = "mistral", "Mistral"
    GROQ = "groq", "Groq"
    DEEPSEEK = "deepseek", "DeepSeek"
    XAI = "xai", "xAI"
    TOGETHER = "together", "Together AI"
    FIREWORKS = "fireworks", "Fireworks"
    OPENROUTER = "openrouter", "OpenRouter"
    OLLAMA = "ollama", "Ollama"
    VLLM = "vllm", "vLLM"
    OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible endpoint"


# Providers that have no public default endpoint: a base URL is required.
PROVIDERS_NEEDING_BASE_URL = frozenset(
    {Provider.AZURE_OPENAI, Provider.OLLAMA, Provider.VLLM, Provider.OPENAI_COMPATIBLE}
)


class WorkspaceDataKey(TenantModel):
    """A workspace's data key (DEK), wrapped by the master key. One active row per workspace;
    a data-key rotation adds a new version and re-encrypts the workspace's secrets."""

    version = models.PositiveIntegerField(default=1)
    wrapped_dek = models.TextField()
    key_version = models.CharField(max_length=32, help_text="fingerprint of the master key")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    rewrapped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "version"], name="datakey_unique_version"),
            models.UniqueConstraint(
                fields=["workspace"], condition=Q(active=True), name="datakey_one_active"
            ),
        ]

    def __repr__(self) -> str:
        return f"<WorkspaceDataKey ws={self.workspace_id} v{self.version} kek={self.key_version}>"


class ProviderCredential(TenantModel):
    """A BYO provider key. The secret is never readable back: only provider, name and last4."""

    provider = models.CharField(max_length=32, choices=Provider.choices)
    name = models.CharField(max_length=100)
    base_url = models.URLField(max_length=500, blank=True, default="")
    api_version = models.CharField(max_length=40, blank=True, default="")
    organization = models.CharField(max_length=120, blank=True, default="")
    timeout_s = models.PositiveIntegerField(default=120)
    last4 = models.CharField(max_length=4, blank=True, default="")
    # AES-256-GCM under the workspace data key `data_key`; both base64.
    nonce = models.CharField(max_length=32)
    ciphertext = models.TextField()
    data_key = models.ForeignKey(WorkspaceDataKey, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="credential_unique_name")
        ]
        ordering = ["provider", "name"]

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"

    def __repr__(self) -> str:  # no ciphertext in tracebacks
        return f"<ProviderCredential {self.pk} {self.provider}:{self.name} ...{self.last4}>"


class GatewayKey(TenantModel):
    """A key clients send as `Authorization: Bearer alph_...`, issued to a member or an agent."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.CASCADE, related_name="gateway_keys"
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="gateway_keys"
    )
    created_by = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(null=True, blank=True)
    rpm = models.PositiveIntegerField(null=True, blank=True)
    tpm = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(member__isnull=False, agent__isnull=True)
                    | Q(member__isnull=True, agent__isnull=False)
                ),
                name="gatewaykey_member_xor_agent",
            )
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_active(self) -> bool:
        if self.revoked_at:
            return False
        return not (self.expires_at and self.expires_at <= timezone.now())

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"
