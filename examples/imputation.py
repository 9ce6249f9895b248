"""Imputing the gaps of a table, then analysing it with multiple imputation.

A small survey-like table (200 people, 5 numeric columns) loses values at
random, more often for older people (missing at random, not completely at
random). ``EMImputer`` fills the gaps; we compare its error with mean
imputation, then estimate a regression slope from five imputed copies and
pool them by Rubin's rules. Run it with ``python examples/imputation.py``;
docs/imputation.md explains every step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from latentem import EMImputer
from latentem.models.imputer import pool_estimates


def make_survey(n: int, rng: np.random.Generator) -> pd.DataFrame:
    age = rng.uniform(20, 70, n)
    education = np.clip(rng.normal(14, 2.5, n), 8, 22)
    income = 8 + 0.8 * education + 0.15 * age + rng.normal(0, 2, n)  # thousands per month
    spending = 0.5 * income + rng.normal(0, 1, n)
    hours = np.clip(45 - 0.2 * (age - 45) + 0.3 * (income - 25) + rng.normal(0, 5, n), 0, None)
    frame = pd.DataFrame(
        {"age": age, "education": education, "income": income, "spending": spending, "hours": hours}
    )
    return frame.round(1)


def hide_values(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Education, income, spending and hours go missing more often for older people;
    age never does."""
    gaps = frame.copy()
    p_missing = 0.05 + 0.3 * (frame["age"].to_numpy() - 20) / 50
    for column in ("education", "income", "spending", "hours"):
        gaps.loc[rng.random(len(frame)) < p_missing, column] = np.nan
    return gaps


def slope_and_variance(frame: pd.DataFrame) -> tuple[float, float]:
    """Least-squares slope of spending on income and its squared standard error."""
    x = frame["income"].to_numpy()
    y = frame["spending"].to_numpy()
    A = np.column_stack([np.ones_like(x), x])
    coef, rss, *_ = np.linalg.lstsq(A, y, rcond=None)
    sigma2 = float(rss[0]) / (len(x) - 2)
    return float(coef[1]), sigma2 * float(np.linalg.inv(A.T @ A)[1, 1])


def main() -> None:
    rng = np.random.default_rng(0)
    truth = make_survey(200, rng)
    survey = hide_values(truth, rng)
    hidden = survey.isna().to_numpy()
    print(f"{hidden.sum()} of {hidden.size} values are missing:")
    print(survey.isna().sum().to_string(), "\n")

    imputer = EMImputer(random_state=0)
    filled = imputer.fit_transform(survey)  # a new DataFrame; `survey` keeps its gaps
    scale = truth.std().to_numpy()

    def rmse(frame: pd.DataFrame) -> float:
        """Error on the hidden cells, in standard deviations of each column."""
        err = (frame.to_numpy() - truth.to_numpy()) / scale
        return float(np.sqrt(np.mean(err[hidden] ** 2)))

    means = survey.fillna(survey.mean())
    print(f"RMSE of EM imputation:   {rmse(filled):.3f}")
    print(f"RMSE of mean imputation: {rmse(means):.3f}")
    print("EM iterations:", imputer.n_iter_, "| converged:", imputer.converged_)
    print("ridge of each column's regression (shrinkage_):", imputer.shrinkage_.round(3))
    fmi = pd.Series(imputer.fraction_missing_info_, index=survey.columns).round(2)
    print("fraction of missing information per column:", fmi.to_dict(), "\n")

    # Multiple imputation: analyse five imputed copies, pool by Rubin's rules.
    copies = imputer.sample_imputations(survey, n_imputations=5, random_state=1)
    slopes, variances = zip(*(slope_and_variance(copy) for copy in copies))
    pooled = pool_estimates(slopes, variances, dfcom=len(survey) - 2)
    low, high = pooled.confint(0.05)
    print(
        f"slope of spending on income: {float(pooled.estimate):.3f} "
        f"(95% CI {float(low):.3f} to {float(high):.3f}; true 0.5)"
    )
    print(f"complete data would give:    {slope_and_variance(truth)[0]:.3f}")
    print(f"fraction of missing information about the slope: {float(pooled.fmi):.2f}")


if __name__ == "__main__":
    main()
