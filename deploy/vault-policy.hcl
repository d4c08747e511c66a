# Tokenkeeper: least-privilege policy for KV v2 mount "aurora", base path "users".
# Apply with: vault policy write tokenkeeper vault-policy.hcl
# Token self-lookup and renewal come from Vault's built-in "default" policy: keep it attached.

# Write (with check-and-set) and read every version of a user's secrets.
path "aurora/data/users/*" {
  capabilities = ["create", "read", "update"]
}

# Read version metadata; delete destroys a secret with all of its versions.
path "aurora/metadata/users/*" {
  capabilities = ["read", "delete"]
}
