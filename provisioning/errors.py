"""Errors a fleet admin can act on; the CLI prints each as one line."""

from __future__ import annotations


class ProvisioningError(RuntimeError):
    """A provisioning step cannot be done; the message says what to do."""


class UnknownSiteError(ProvisioningError):
    """The site is not registered."""


class ThingExistsError(ProvisioningError):
    """The thing already has an active certificate."""


class ThingNotFoundError(ProvisioningError):
    """No thing of that name in the registry."""


class InvalidDeviceError(ProvisioningError):
    """A device description (equipment, hourly cost, CSV row) is not acceptable."""


class CredentialsMissingError(ProvisioningError):
    """AWS mode without usable AWS credentials or region."""
