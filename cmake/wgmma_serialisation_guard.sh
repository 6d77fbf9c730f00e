#!/bin/sh
# CUDA compiler launcher of ctfuse's own builds (src/CMakeLists.txt): runs the compile
# and fails it where ptxas reports that it serialised wgmma instructions (info C7515 and
# its kin: "wgmma.mma_async instructions are serialized due to ..."). A normal build
# prints that as one info line among many, and it once cost the fused kernel 11%
# (bench/RESULTS.md, tenth session).
log=$(mktemp) || exit 1
"$@" >"$log" 2>&1
rc=$?
cat "$log" >&2
if [ "$rc" -eq 0 ] && grep -q "wgmma.mma_async instructions are serialized" "$log"; then
  echo "ctfuse: ptxas serialised wgmma instructions (above). Configure with" \
       "-DCTFUSE_WGMMA_SERIALISATION_IS_ERROR=OFF to build anyway." >&2
  rc=1
fi
rm -f "$log"
exit "$rc"
