# Reference fits by lme4/lmerTest for tests/stats/test_lme4.py (one call for every cohort).
#
#   Rscript lme4_reference.R DIR
#
# DIR/manifest.csv lists the cohorts: id, re (nested | patient | slopes), drops (LRT tests,
# "name=1,2,3;name2=4,5" with 1-based design columns), factors (raw label columns to code).
# DIR/<id>_data.csv holds y, patient, lesion, t (the random-slope covariate), x1..xp (the design
# built by lesionqsm) and f_<name> label columns; DIR/<id>_L.csv holds contrast rows (fitted
# means).  Writes DIR/<id>_out.csv: quantity, i, value.
suppressPackageStartupMessages({
    library(lme4)
    library(lmerTest)
})
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
manifest <- read.csv(file.path(dir, "manifest.csv"), stringsAsFactors = FALSE,
                     colClasses = "character")
# tight optimiser tolerances: the comparison is between optima, not between stopping rules
ctrl <- lmerControl(optimizer = "nloptwrap",
                    optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12,
                                   ftol_rel = 1e-15, maxeval = 1e5),
                    check.conv.singular = "ignore")
re_terms <- c(nested = "(1 | patient) + (1 | pl)", patient = "(1 | patient)",
              slopes = "(1 + t | patient) + (1 | pl) + (0 + t | pl)")
for (k in seq_len(nrow(manifest))) {
    spec <- manifest[k, ]
    d <- read.csv(file.path(dir, paste0(spec$id, "_data.csv")), stringsAsFactors = FALSE,
                  colClasses = c(patient = "character", lesion = "character"))
    d$patient <- factor(d$patient)
    d$pl <- factor(paste(d$patient, d$lesion, sep = ":"))
    X <- as.matrix(d[, grep("^x[0-9]+$", names(d))])
    re <- re_terms[[spec$re]]
    out <- list()
    put <- function(name, v) if (length(v)) out[[length(out) + 1]] <<- data.frame(
        quantity = name, i = seq_along(v) - 1L, value = as.numeric(v))
    t0 <- proc.time()[["elapsed"]]
    fit <- lmerTest::lmer(as.formula(paste("y ~ 0 + X +", re)), data = d, REML = TRUE,
                          control = ctrl)
    put("loglik", as.numeric(logLik(fit)))
    put("beta", fixef(fit))
    put("se", sqrt(diag(as.matrix(vcov(fit)))))
    co <- summary(fit)$coefficients
    put("df", co[, "df"])
    vc <- as.data.frame(VarCorr(fit))
    single <- vc[is.na(vc$var2), ]
    pat <- single[single$grp == "patient", ]
    les <- single[startsWith(single$grp, "pl"), ]
    # intercept first, then the slope (lme4 may order the terms otherwise)
    put("var_patient", c(pat$vcov[pat$var1 == "(Intercept)"], pat$vcov[pat$var1 == "t"]))
    put("var_lesion", c(les$vcov[les$var1 == "(Intercept)"], les$vcov[les$var1 == "t"]))
    put("var_residual", sigma(fit)^2)
    L <- as.matrix(read.csv(file.path(dir, paste0(spec$id, "_L.csv"))))
    ct <- contest(fit, L, joint = FALSE, confint = TRUE, level = 0.95)
    put("mean_estimate", ct$Estimate)
    put("mean_se", ct[["Std. Error"]])
    put("mean_df", ct$df)
    put("mean_lower", ct$lower)
    put("mean_upper", ct$upper)
    if (nzchar(spec$drops)) {
        full <- lme4::lmer(as.formula(paste("y ~ 0 + X +", re)), data = d, REML = FALSE,
                           control = ctrl)
        stats <- c()
        for (test in strsplit(spec$drops, ";", fixed = TRUE)[[1]]) {
            cols <- as.integer(strsplit(sub(".*=", "", test), ",", fixed = TRUE)[[1]])
            Xr <- X[, -cols, drop = FALSE]
            reduced <- lme4::lmer(as.formula(paste("y ~ 0 + Xr +", re)), data = d,
                                  REML = FALSE, control = ctrl)
            stats <- c(stats, 2 * (as.numeric(logLik(full)) - as.numeric(logLik(reduced))))
        }
        put("loglik_ml", as.numeric(logLik(full)))
        put("lrt", stats)
    }
    if (nzchar(spec$factors)) {
        f <- paste0("f_", strsplit(spec$factors, ",", fixed = TRUE)[[1]])
        mm <- model.matrix(as.formula(paste("~", paste(f, collapse = " + "))), data = d)
        mm <- mm[, -1, drop = FALSE]
        for (j in seq_len(ncol(mm))) put(paste0("factor:", sub("^f_", "", colnames(mm)[j])),
                                          mm[, j])
    }
    put("seconds", proc.time()[["elapsed"]] - t0)
    write.csv(do.call(rbind, out), file.path(dir, paste0(spec$id, "_out.csv")),
              row.names = FALSE)
}
