"""Group-model benchmark: lesionqsm against R's lme4/lmerTest on the same cohort, same run.

    .venv/bin/python benchmarks/bench_stats.py                  # 10,000 lesions
    .venv/bin/python benchmarks/bench_stats.py --lesions 1000 --seeds 20

The cohort (``--lesions`` lesions × 5 visits in lesions × 19/32 patients, the paper's ratio) is
written as per-subject lesion tables, as the participant level writes them.  lesionqsm runs the
whole group level (:func:`lesionqsm.cli.group.run_group_level`): reading the tables, the
degree-8 susceptibility model with five covariates (REML, Satterthwaite df for every
coefficient and the 27 fitted means), its three likelihood-ratio tests (4 ML fits), the
volume-change variant with its two tests (2 REML + 3 ML fits), the volume model, the figures
and the TSV/JSON outputs.  R does the same model work with lme4/lmerTest from one combined
table (its reading of thousands of small files is not timed against ours): the same fits, the
same Satterthwaite df (``summary`` and ``contest``), a PNG of the fitted means, TSV outputs.
The ratio lesionqsm / R (wall time) is printed; R's own start-up is included in its time.

``--seeds N`` adds a table of bias and 95 % CI coverage of the fitted means over N cohorts of
240 lesions in 100 patients (lesionqsm only).
"""

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from lesionqsm.cli.group import read_lesion_tables, run_group_level
from lesionqsm.stats.growth_curve import fit_growth_curve
from lesionqsm.stats.options import GroupModelOptions
from lesionqsm.synth.lesion_table import simulate_lesion_table
from lesionqsm.synth.trajectory import mean_susceptibility_ppb

R_SCRIPT = r'''
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
args <- commandArgs(trailingOnly = TRUE)
t0 <- proc.time()[["elapsed"]]
d <- read.delim(args[1], na.strings = "n/a", colClasses = c(participant_id = "character",
                                                            lesion_id = "character"))
p <- read.delim(args[2], na.strings = "n/a", colClasses = c(participant_id = "character"))
d <- merge(d, p, by = "participant_id")
d <- d[d$status == "ok" & is.finite(d$chi_rel_ppb), ]
d$patient <- factor(d$participant_id)
d$pl <- factor(paste(d$participant_id, d$lesion_id))
d$rim <- factor(d$rim, levels = c("positive", "negative"))
pts <- unique(quantile(unique(d$lesion_age_years), 0:8 / 8))
d$age_bin <- pts[apply(abs(outer(d$lesion_age_years, pts, "-")), 1, which.min)]
basis <- poly(sort(unique(d$age_bin)), 8)
vbasis <- poly(sort(unique(d$age_bin)), 3)
d$A <- predict(basis, d$age_bin)
d$V <- predict(vbasis, d$age_bin)
re <- "(1 | patient) + (1 | pl)"
covs <- "baseline_volume_mm3 + edss + age + disease_duration + treatment_duration"
f <- function(rhs) as.formula(paste("chi_rel_ppb ~", rhs))
full <- paste("A * rim +", covs)
chi <- lmerTest::lmer(f(paste(full, "+", re)), data = d, REML = TRUE)
coef <- summary(chi)$coefficients
newrows <- function(fit, B, ages) {
    X <- model.matrix(fit)
    m <- colMeans(X)
    L <- NULL
    for (g in c(0, 1)) {
        b <- predict(B, ages)
        for (k in seq_along(ages)) {
            r <- m
            r[grep("^[AV][0-9]+$", names(r))] <- b[k, ]
            r["rimnegative"] <- g
            r[grep(":rimnegative$", names(r))] <- b[k, ] * g
            L <- rbind(L, r)
        }
    }
    rbind(L, L[(length(ages) + 1):(2 * length(ages)), ] - L[seq_along(ages), ])
}
ages <- c(0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 6)
means <- contest(chi, newrows(chi, basis, ages), joint = FALSE, confint = TRUE)
ml <- function(rhs) lme4::lmer(f(paste(rhs, "+", re)), data = d, REML = FALSE)
mfull <- ml(full)
lrt <- c(rim = 2 * (logLik(mfull) - logLik(ml(paste("A +", covs)))),
         rimage = 2 * (logLik(mfull) - logLik(ml(paste("A + rim +", covs)))),
         age = 2 * (logLik(mfull) - logLik(ml(paste("rim +", covs)))))
vcovs <- sub("baseline_volume_mm3", "volume_change_mm3", covs)
variant <- lmerTest::lmer(f(paste("A * rim +", vcovs, "+", re)), data = d, REML = TRUE)
vcoef <- summary(variant)$coefficients
inter <- lme4::lmer(f(paste("A * rim +", vcovs, "+ volume_change_mm3:rim +", re)),
                    data = d, REML = TRUE)
vml <- ml(paste("A * rim +", vcovs))
vlrt <- c(2 * (logLik(vml) - logLik(ml(paste("A * rim +",
                                             sub("volume_change_mm3 \\+ ", "", vcovs))))),
          2 * (logLik(ml(paste("A * rim +", vcovs, "+ volume_change_mm3:rim"))) - logLik(vml)))
vol <- lmerTest::lmer(volume_mm3 ~ V * rim + (1 | patient), data = d, REML = TRUE)
volcoef <- summary(vol)$coefficients
volmeans <- contest(vol, newrows(vol, vbasis, ages), joint = FALSE, confint = TRUE)
out <- args[3]
write.table(coef, file.path(out, "chi_coefficients.tsv"), sep = "\t")
write.table(means, file.path(out, "chi_fittedmeans.tsv"), sep = "\t")
write.table(lrt, file.path(out, "chi_lrt.tsv"), sep = "\t")
write.table(vcoef, file.path(out, "variant_coefficients.tsv"), sep = "\t")
write.table(vlrt, file.path(out, "variant_lrt.tsv"), sep = "\t")
write.table(volcoef, file.path(out, "volume_coefficients.tsv"), sep = "\t")
write.table(volmeans, file.path(out, "volume_fittedmeans.tsv"), sep = "\t")
png(file.path(out, "chi.png"), width = 768, height = 504)
plot(d$lesion_age_years, d$chi_rel_ppb, pch = ".", col = as.integer(d$rim) + 1)
for (g in 0:1) lines(ages, means$Estimate[g * 9 + 1:9], col = g + 2, lwd = 2)
invisible(dev.off())
cat(sprintf("R_MODEL_SECONDS %.3f\n", proc.time()[["elapsed"]] - t0))
cat(sprintf("R_LOGLIK %.10f\n", as.numeric(logLik(chi))))
cat(sprintf("R_LRT %s\n", paste(sprintf("%.8f", c(lrt, vlrt)), collapse = " ")))
'''


def write_cohort(root, n_lesions, seed):
    """Per-subject lesion tables (participant-level layout), participants.tsv, one combined TSV."""
    lesions, participants, _ = simulate_lesion_table(
        n_patients=max(3, round(n_lesions * 19 / 32)), n_lesions=n_lesions, visits_per_lesion=5,
        n_rim_positive=n_lesions // 2, rng=np.random.default_rng(seed))
    out, bids = root / 'derivatives', root / 'bids'
    bids.mkdir(parents=True)
    for pid, rows in lesions.groupby('participant_id'):
        (out / pid).mkdir(parents=True)
        rows.to_csv(out / pid / f'{pid}_lesions.tsv', sep='\t', index=False, na_rep='n/a')
    participants.to_csv(bids / 'participants.tsv', sep='\t', index=False, na_rep='n/a')
    lesions.to_csv(root / 'all_lesions.tsv', sep='\t', index=False, na_rep='n/a')
    return out, bids, lesions, participants


def run_lesionqsm(out, bids):
    t0, c0 = time.perf_counter(), time.process_time()
    tables = sorted(out.glob('sub-*/sub-*_lesions.tsv'))
    read_lesion_tables(tables)
    t_read = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    written = run_group_level(out, bids, GroupModelOptions())
    return time.perf_counter() - t0, time.process_time() - c0, t_read, written


def run_r(root, bids):
    rscript = shutil.which('Rscript')
    if rscript is None:
        return None
    script = root / 'bench.R'
    script.write_text(R_SCRIPT)
    r_out = root / 'r_out'
    r_out.mkdir()
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run([rscript, str(script), str(root / 'all_lesions.tsv'),
                          str(bids / 'participants.tsv'), str(r_out)],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    if run.returncode:
        raise RuntimeError(f'R failed:\n{run.stderr[-2000:]}')
    values = dict(line.split(' ', 1) for line in run.stdout.splitlines() if line.startswith('R_'))
    return wall, cpu, values


def timing(n_lesions):
    import json

    import pandas as pd

    with tempfile.TemporaryDirectory(prefix='bench_stats_') as tmp:
        root = Path(tmp)
        out, bids, lesions, _ = write_cohort(root, n_lesions, seed=n_lesions)
        n_subjects = lesions['participant_id'].nunique()
        ours, ours_cpu, t_read, written = run_lesionqsm(out, bids)
        r = run_r(root, bids)
        summary = json.loads(Path(written['summary']).read_text())
        lrt = pd.read_csv(written['chi_lrt'], sep='\t')
        vlrt = pd.read_csv(written['chivolchange_lrt'], sep='\t')
        print(f'\n{n_lesions} lesions, {n_subjects} patients, {len(lesions)} lesion visits\n')
        print('| | wall time (s) | CPU time (s) |')
        print('|---|---:|---:|')
        print(f'| lesionqsm: read {n_subjects} lesion tables | {t_read[0]:.2f} | '
              f'{t_read[1]:.2f} |')
        print(f'| lesionqsm: whole group level (read, 11 fits, df, LRTs, figures, outputs) '
              f'| {ours:.1f} | {ours_cpu:.1f} |')
        if r is None:
            print('\nR (Rscript with lme4, lmerTest) not found: no comparison')
            return
        wall, cpu, values = r
        inside = float(values['R_MODEL_SECONDS'])
        print(f'| R lme4/lmerTest: same model work (inside R) | {inside:.1f} | |')
        print(f'| R lme4/lmerTest: Rscript process | {wall:.1f} | {cpu:.1f} |')
        print(f'\nratio lesionqsm / lme4: wall time {ours / wall:.2f}, CPU time '
              f'{ours_cpu / cpu:.2f}')
        ll = summary['susceptibility_model']['loglik']
        r_ll = float(values['R_LOGLIK'])
        r_lrt = np.array(values['R_LRT'].split(), dtype=float)
        ours_lrt = np.concatenate([lrt['statistic'], vlrt['statistic']])
        print(f'REML log-likelihood: lesionqsm {ll:.6f}, lme4 {r_ll:.6f} '
              f'(rel. difference {abs(ll - r_ll) / abs(r_ll):.1e})')
        print('LRT statistics, max rel. difference: '
              f'{np.max(np.abs(ours_lrt - r_lrt) / np.maximum(np.abs(r_lrt), 1e-2)):.1e}')


def bias(n_seeds):
    errors, covered = [], []
    for seed in range(n_seeds):
        lesions, participants, _ = simulate_lesion_table(
            n_patients=100, n_lesions=240, visits_per_lesion=5,
            rng=np.random.default_rng(1000 + seed))
        table = fit_growth_curve(lesions, participants).fitted_means()
        table = table[table['rim'] != 'difference']
        true = np.array([mean_susceptibility_ppb(a, r)
                         for a, r in zip(table['age_years'], table['rim'], strict=True)])
        errors.append(table['estimate'].to_numpy() - true)
        covered.append((table['ci_low'].to_numpy() <= true) & (true <= table['ci_high']))
    errors, covered = np.array(errors), np.array(covered)
    print(f'\nBias over {n_seeds} seeds (240 lesions, 100 patients, 5 visits each)\n')
    print('| fitted mean | true (ppb) | bias (ppb) | MC s.e. | 95% CI coverage |')
    print('|---|---:|---:|---:|---:|')
    for k, (age, rim) in enumerate(zip(table['age_years'], table['rim'], strict=True)):
        e = errors[:, k]
        print(f'| {rim} {age:g} y | {mean_susceptibility_ppb(age, rim):.2f} | '
              f'{e.mean():+.3f} | {e.std(ddof=1) / np.sqrt(len(e)):.3f} | '
              f'{covered[:, k].mean():.2f} |')
    print(f'\nOverall fitted-mean coverage: {covered.mean():.3f} (nominal 0.95)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lesions', type=int, default=10000)
    parser.add_argument('--seeds', type=int, default=0, help='cohorts of the bias table')
    args = parser.parse_args()
    warnings.simplefilter('ignore')
    timing(args.lesions)
    if args.seeds:
        bias(args.seeds)


if __name__ == '__main__':
    main()
