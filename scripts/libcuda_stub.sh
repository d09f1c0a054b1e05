#!/usr/bin/env bash
# Prints the C source of a stand-in driver library: every cu* entry point that INCLUDE_DIR/cuda.h
# declares, as a function answering 0 (CUDA_SUCCESS), except the NAMEs given, which the caller
# appends itself. build_cuda.sh links against one (the real driver is used at run time);
# cuda_standin_check.sh runs the binary against some.
#
#   scripts/libcuda_stub.sh INCLUDE_DIR [NAME...]
set -euo pipefail
include=${1:?usage: scripts/libcuda_stub.sh INCLUDE_DIR [NAME...]}
shift
gcc -E -P "$include/cuda.h" | grep -oE '\bcu[A-Za-z0-9_]+[[:space:]]*\(' | tr -d '( \t' | sort -u \
  | awk -v skip=" $* " 'index(skip, " " $1 " ") == 0 {print "int " $1 "(void) { return 0; }"}'
