# shellcheck disable=SC2034 # the header sets every value; each flavour uses some of them
set -euo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive

MODEL={{MODEL}}
GPU_COUNT={{GPU_COUNT}}
VLLM_IMAGE={{VLLM_IMAGE}}
HAPROXY_IMAGE={{HAPROXY_IMAGE}}
ENGINE_PORT={{ENGINE_PORT}}
FIRST_BACKEND_PORT={{FIRST_BACKEND_PORT}}
SESSION_HEADER={{SESSION_HEADER}}
DATA_VOLUME_GB={{DATA_VOLUME_GB}}
DATA_DIR={{DATA_DIR}}
CONFIG_DIR={{CONFIG_DIR}}
WORK_DIR={{WORK_DIR}}
AGENT_BIN={{AGENT_BIN}}
AGENT_STAGED={{AGENT_STAGED}}
AGENT_SHA256={{AGENT_SHA256}}
AGENT_ENV_FILE="$CONFIG_DIR/agent.env"
HF_ENV_FILE="$CONFIG_DIR/hf.env"
PID_FILE="$WORK_DIR/bootstrap.pid"

# The control plane reads these markers on stdout: everything after one belongs to that phase.
phase() { echo "::phase::$1"; }

# A previous run still going (a timed-out attempt, whose connection was dropped) is stopped
# first: two runs must not race on the same containers. Runs are session leaders (setsid), so
# the whole process group goes.
stop_previous_run() {
  local old
  old="$(cat "$PID_FILE" 2>/dev/null || true)"
  if [ -n "$old" ] && [ "$old" != "$$" ] && kill -0 "$old" 2>/dev/null; then
    echo "stopping the previous bootstrap run (pid $old)"
    kill -TERM -- "-$old" 2>/dev/null || kill -TERM "$old" 2>/dev/null || true
    sleep 1
  fi
  mkdir -p "$WORK_DIR"
  echo "$$" > "$PID_FILE"
}
