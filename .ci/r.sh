#!/usr/bin/env bash
# R with lme4 and lmerTest from Debian, for the reference tests of the group model
# (tests/stats/test_lme4.py).  Idempotent; fails loudly if R cannot load both packages.
set -euo pipefail
if ! Rscript -e 'suppressMessages({library(lme4); library(lmerTest)})' >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends r-base-core r-cran-lme4 r-cran-lmertest
fi
Rscript -e 'suppressMessages({library(lme4); library(lmerTest)});
            cat("R", R.version$major, R.version$minor, "lme4", format(packageVersion("lme4")),
                "lmerTest", format(packageVersion("lmerTest")), "\n")'
