"""The IoT thing registry through a boto3 IoT client (AWS, or moto for the local stack)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from provisioning.ca import common_name_of
from provisioning.policy import THING_ATTRIBUTES, THING_TYPE_NAME

SITE_GROUP_PREFIX = "site-"


@dataclass(frozen=True)
class ThingRecord:
    name: str
    attributes: dict[str, str]
    thing_type: str | None

    @property
    def site(self) -> str:
        return self.attributes.get("site", "")

    @property
    def equipment(self) -> str:
        return self.attributes.get("equipment", "")


@dataclass(frozen=True)
class CertificateRecord:
    certificate_id: str
    arn: str
    status: str
    pem: str = field(repr=False)
    not_before: datetime | None
    not_after: datetime | None
    serial: int | None
    subject_cn: str | None
    things: tuple[str, ...] = field(default_factory=tuple)
    policies: tuple[str, ...] = field(default_factory=tuple)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_not_found(exc: Exception) -> bool:
    return _error_code(exc) in ("ResourceNotFoundException", "NotFoundException")


def is_already_exists(exc: Exception) -> bool:
    return _error_code(exc) in ("ResourceAlreadyExistsException", "ResourceAlreadyExists")


class Registry:
    """Things, certificates, policies and site groups, in terms the provisioning flow needs."""

    def __init__(self, iot: Any) -> None:
        self.iot = iot

    # -- things ------------------------------------------------------------------------------

    def ensure_thing_type(self) -> None:
        try:
            self.iot.describe_thing_type(thingTypeName=THING_TYPE_NAME)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            self.iot.create_thing_type(
                thingTypeName=THING_TYPE_NAME,
                thingTypeProperties={
                    "thingTypeDescription": "A machine on a construction site with a Pi",
                    "searchableAttributes": list(THING_ATTRIBUTES),
                },
            )

    def get_thing(self, name: str) -> ThingRecord | None:
        try:
            data = self.iot.describe_thing(thingName=name)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return ThingRecord(name, dict(data.get("attributes") or {}), data.get("thingTypeName"))

    def create_thing(self, name: str, attributes: Mapping[str, str]) -> None:
        self.iot.create_thing(
            thingName=name,
            thingTypeName=THING_TYPE_NAME,
            attributePayload={"attributes": dict(attributes), "merge": False},
        )

    def update_thing(self, name: str, attributes: Mapping[str, str]) -> None:
        self.iot.update_thing(
            thingName=name,
            thingTypeName=THING_TYPE_NAME,
            attributePayload={"attributes": dict(attributes), "merge": False},
        )

    def delete_thing(self, name: str) -> None:
        self.iot.delete_thing(thingName=name)

    def things(self) -> Iterator[ThingRecord]:
        for page in self.iot.get_paginator("list_things").paginate():
            for item in page.get("things", []):
                yield ThingRecord(
                    item["thingName"], dict(item.get("attributes") or {}), item.get("thingTypeName")
                )

    # -- sites (static thing groups) ---------------------------------------------------------

    def site_exists(self, site: str) -> bool:
        try:
            self.iot.describe_thing_group(thingGroupName=SITE_GROUP_PREFIX + site)
        except Exception as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def create_site(self, site: str, description: str = "") -> None:
        try:
            self.iot.create_thing_group(
                thingGroupName=SITE_GROUP_PREFIX + site,
                thingGroupProperties={
                    "thingGroupDescription": description or f"construction site {site}",
                    "attributePayload": {"attributes": {"site": site}},
                },
            )
        except Exception as exc:
            if not is_already_exists(exc):
                raise

    def delete_site(self, site: str) -> None:
        self.iot.delete_thing_group(thingGroupName=SITE_GROUP_PREFIX + site)

    def sites(self) -> list[str]:
        names: list[str] = []
        for page in self.iot.get_paginator("list_thing_groups").paginate():
            for group in page.get("thingGroups", []):
                name = str(group["groupName"])
                if name.startswith(SITE_GROUP_PREFIX):
                    names.append(name[len(SITE_GROUP_PREFIX) :])
        return sorted(names)

    def add_to_site(self, thing: str, site: str) -> None:
        self.iot.add_thing_to_thing_group(thingGroupName=SITE_GROUP_PREFIX + site, thingName=thing)

    def remove_from_site(self, thing: str, site: str) -> None:
        self.iot.remove_thing_from_thing_group(
            thingGroupName=SITE_GROUP_PREFIX + site, thingName=thing
        )

    # -- policies ----------------------------------------------------------------------------

    def ensure_policy(self, name: str, document: Mapping[str, Any]) -> None:
        try:
            self.iot.get_policy(policyName=name)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            self.iot.create_policy(policyName=name, policyDocument=json.dumps(document))

    def policy_exists(self, name: str) -> bool:
        try:
            self.iot.get_policy(policyName=name)
        except Exception as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def policy_documents(self) -> dict[str, dict[str, Any]]:
        documents: dict[str, dict[str, Any]] = {}
        for page in self.iot.get_paginator("list_policies").paginate():
            for item in page.get("policies", []):
                name = item["policyName"]
                text = self.iot.get_policy(policyName=name).get("policyDocument", "{}")
                documents[name] = json.loads(text)
        return documents

    # -- certificates ------------------------------------------------------------------------

    def register_certificate(self, pem: str) -> tuple[str, str]:
        """Register a certificate signed by our own CA, active; (certificateId, arn)."""
        data = self.iot.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")
        return str(data["certificateId"]), str(data["certificateArn"])

    def create_certificate_from_csr(self, csr_pem: str) -> tuple[str, str, str]:
        """Amazon-signed certificate for a CSR, active; (certificateId, arn, pem)."""
        data = self.iot.create_certificate_from_csr(
            certificateSigningRequest=csr_pem, setAsActive=True
        )
        return str(data["certificateId"]), str(data["certificateArn"]), str(data["certificatePem"])

    def set_certificate_status(self, certificate_id: str, status: str) -> None:
        self.iot.update_certificate(certificateId=certificate_id, newStatus=status)

    def delete_certificate(self, certificate_id: str) -> None:
        self.iot.delete_certificate(certificateId=certificate_id, forceDelete=True)

    def attach(self, thing: str, certificate_arn: str, policy: str) -> None:
        self.iot.attach_policy(policyName=policy, target=certificate_arn)
        self.iot.attach_thing_principal(thingName=thing, principal=certificate_arn)

    def detach(self, thing: str, certificate_arn: str) -> None:
        """Detach the certificate from the thing and from every policy."""
        for policy in self.certificate_policies(certificate_arn):
            self.iot.detach_policy(policyName=policy, target=certificate_arn)
        try:
            self.iot.detach_thing_principal(thingName=thing, principal=certificate_arn)
        except Exception as exc:
            if not is_not_found(exc):
                raise

    def thing_principals(self, thing: str) -> list[str]:
        principals: list[str] = []
        for page in self.iot.get_paginator("list_thing_principals").paginate(thingName=thing):
            principals.extend(page.get("principals", []))
        return principals

    def principal_things(self, principal: str) -> list[str]:
        things: list[str] = []
        for page in self.iot.get_paginator("list_principal_things").paginate(principal=principal):
            things.extend(page.get("things", []))
        return things

    def certificate_policies(self, certificate_arn: str) -> list[str]:
        data = self.iot.list_attached_policies(target=certificate_arn)
        return [p["policyName"] for p in data.get("policies", [])]

    def certificate(self, certificate_id: str, *, with_links: bool = True) -> CertificateRecord:
        data = self.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
        pem = str(data.get("certificatePem", ""))
        arn = str(data["certificateArn"])
        not_before, not_after, serial, cn = _parse_pem(pem)
        things: tuple[str, ...] = ()
        policies: tuple[str, ...] = ()
        if with_links:
            things = tuple(self.principal_things(arn))
            policies = tuple(self.certificate_policies(arn))
        return CertificateRecord(
            certificate_id=certificate_id,
            arn=arn,
            status=str(data.get("status", "")),
            pem=pem,
            not_before=not_before,
            not_after=not_after,
            serial=serial,
            subject_cn=cn,
            things=things,
            policies=policies,
        )

    def certificate_ids(self) -> list[str]:
        ids: list[str] = []
        for page in self.iot.get_paginator("list_certificates").paginate():
            ids.extend(str(c["certificateId"]) for c in page.get("certificates", []))
        return ids

    def thing_certificates(self, thing: str) -> list[CertificateRecord]:
        return [
            self.certificate(certificate_id_from_arn(arn))
            for arn in self.thing_principals(thing)
            if ":cert/" in arn
        ]


def certificate_id_from_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _parse_pem(pem: str) -> tuple[datetime | None, datetime | None, int | None, str | None]:
    # The registry's own validity fields are not trustworthy everywhere (moto invents them);
    # the certificate itself is.
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None, None, None, None
    return (
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        cert.serial_number,
        common_name_of(cert.subject),
    )
