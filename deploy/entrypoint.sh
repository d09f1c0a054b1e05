#!/bin/sh
# The container's entry point. Without arguments, or with SageMaker's single `serve`, it serves the
# model at $KOMPRESS_MODEL on every interface at $PORT under the name $KOMPRESS_MODEL_NAME, with any
# further flags from $KOMPRESS_ARGS (say `--grace-ms 10000 --ratio 0.5`); other arguments are passed
# to `kompress` as they are (`docker run IMAGE compress --help`).
set -eu
if [ "$#" -eq 0 ] || { [ "$#" -eq 1 ] && [ "$1" = serve ]; }; then
  # shellcheck disable=SC2086 # KOMPRESS_ARGS is a list of flags, split on purpose.
  set -- serve --host 0.0.0.0 --port "${PORT:-8080}" --model "${KOMPRESS_MODEL:-/models/kompress}" \
    --model-name "${KOMPRESS_MODEL_NAME:-kompress}" ${KOMPRESS_ARGS:-}
fi
exec /usr/local/bin/kompress "$@"
