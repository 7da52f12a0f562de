"""Certificate authority, device certificates, thing registry, bundles and audit."""
