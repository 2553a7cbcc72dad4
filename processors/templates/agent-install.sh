# The agent binary was uploaded over SFTP to $AGENT_STAGED; it is installed only if its
# SHA-256 on this machine is the one the control plane computed before sending it.
actual="$(sha256sum "$AGENT_STAGED" | cut -d' ' -f1)"
if [ "$actual" != "$AGENT_SHA256" ]; then
  echo "agent binary checksum mismatch: expected $AGENT_SHA256, found $actual" >&2
  exit 1
fi
echo "agent binary checksum verified: $actual"
mkdir -p "$(dirname "$AGENT_BIN")"
install -m 0755 "$AGENT_STAGED" "$AGENT_BIN.new"
mv -f "$AGENT_BIN.new" "$AGENT_BIN"
# Written by the control plane before the script ran; secrets inside, root only.
test -f "$AGENT_ENV_FILE" || { echo "missing $AGENT_ENV_FILE" >&2; exit 1; }
chmod 0600 "$AGENT_ENV_FILE" "$HF_ENV_FILE"
echo "agent installed at $AGENT_BIN"
