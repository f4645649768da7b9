"""The study's scaling laws and how it fits them (``analysis/curve_fitting`` of scaling-primate-vvs).

Misalignment ``L = 1 - score`` is a saturating power law of a scaled resource ``x`` (compute / 1e13, parameters / 1e5,
samples seen / 1e4), fitted in log space with the log-sum-exp parameterisation ``E = exp(e)``, ``A = exp(a)``:

* power law          ``L = E + A x^-alpha``                    ``log L = LSE(e, a - alpha log x)``
* shifted power law  ``L = E + A (x + 10^lambda)^-alpha``        (the study's fit of ConvNeXt / ViT)
* joint (Chinchilla) ``L = E + A N^-alpha + B D^-beta``          ``log L = LSE(e, a - alpha log N, b - beta log D)``

The objective is the sum over points of the Huber loss (delta 1e-3) of ``log L_hat - log L``, minimised by BFGS from
every point of the study's grid of initial values; the lowest loss wins. Here all starts run at once (a vectorised
BFGS with analytic gradients), and the winner is polished by scipy's BFGS, the study's optimiser.
"""
from __future__ import annotations

import functools
import itertools
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import minimize

DELTA = 1e-3  # the Huber loss's threshold on log residuals
GTOL = 1e-5  # scipy BFGS's default: stop where the largest gradient component is below this
LN10 = np.log(10.0)
FTOL = 1e-9  # a row also stops when a step lowers its loss by less than this (relative)
_E_GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)
_A_GRID = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
_EXPONENT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Law:
    """A law: its log-space parameters (fitted), natural parameters (reported) and the study's initial grid."""
    name: str
    formula: str
    fitted: tuple[str, ...]
    natural: tuple[str, ...]
    grid: tuple[tuple[float, ...], ...]
    inputs: int  # how many resources (columns of x)
    evaluate: Callable  # (theta (R, P), log x (R|1, n, inputs)) -> log L (R, n), [d log L / d theta_p (R, n)]

    def starts(self) -> np.ndarray:
        """The study's initial values: every combination of the grid (150, 750 or 4,500 starts)."""
        return np.array(list(itertools.product(*self.grid)), dtype=float)

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        """(E, A, ...) from (e, a, ...): the amplitudes are exponentiated, exponents and shifts kept."""
        values = np.array(theta, dtype=float)
        for position, name in enumerate(self.fitted):
            if name in ("e", "a", "b"):
                values[..., position] = np.exp(values[..., position])
        return values

    def misalignment(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``L`` at the resources ``x`` (n, inputs), for each parameter row of ``theta`` (R, P): shape (R, n)."""
        log_x = np.log(np.asarray(x, dtype=float).reshape(1, -1, self.inputs))
        return np.exp(self.evaluate(np.atleast_2d(theta), log_x)[0])


def _column(theta: np.ndarray, position: int) -> np.ndarray:
    return theta[:, position, None]


def _lse(*terms):
    """log(sum(exp(terms))) and each term's share of the sum, without overflow."""
    top = functools.reduce(np.maximum, terms)
    parts = [np.exp(term - top) for term in terms]
    total = sum(parts)
    return top + np.log(total), [part / total for part in parts]


def _power_law(theta, log_x):
    e, a, alpha = (_column(theta, p) for p in range(3))
    lx = log_x[..., 0]
    log_l, (_, w) = _lse(e, a - alpha * lx)
    return log_l, [1 - w, w, -w * lx]


def _shifted_power_law(theta, log_x):
    e, a, lam, alpha = (_column(theta, p) for p in range(4))
    log_shift = lam * LN10
    u, (_, shift) = _lse(log_x[..., 0], log_shift)  # log(x + 10^lambda) and 10^lambda / (x + 10^lambda)
    log_l, (_, w) = _lse(e, a - alpha * u)
    return log_l, [1 - w, w, -w * alpha * LN10 * shift, -w * u]


def _joint(theta, log_x):
    e, a, alpha, b, beta = (_column(theta, p) for p in range(5))
    ln, ld = log_x[..., 0], log_x[..., 1]
    log_l, (we, wa, wb) = _lse(e, a - alpha * ln, b - beta * ld)
    return log_l, [we, wa, -wa * ln, wb, -wb * ld]


LAWS = {law.name: law for law in (
    Law("power_law", "1 - S = E + A * x^-alpha", ("e", "a", "alpha"), ("E", "A", "alpha"),
        (_E_GRID, _A_GRID, _EXPONENT_GRID), 1, _power_law),
    Law("shifted_power_law", "1 - S = E + A * (x + 10^lambda)^-alpha", ("e", "a", "lambda", "alpha"),
        ("E", "A", "lambda", "alpha"), (_E_GRID, _A_GRID, _EXPONENT_GRID, _EXPONENT_GRID), 1, _shifted_power_law),
    Law("joint", "1 - S = E + A * N^-alpha + B * D^-beta", ("e", "a", "alpha", "b", "beta"),
        ("E", "A", "alpha", "B", "beta"), (_E_GRID, _A_GRID, _EXPONENT_GRID, _A_GRID, _EXPONENT_GRID), 2, _joint),
)}


def huber_objective(law: Law, theta: np.ndarray, log_x: np.ndarray, log_l: np.ndarray):
    """Sum over points of Huber(log L_hat - log L) per parameter row, and its gradient: (R,), (R, P)."""
    with np.errstate(over="ignore", invalid="ignore"):  # a trial step far out: an infinite loss, rejected
        predicted, partials = law.evaluate(theta, log_x)
        residual = predicted - log_l
        size = np.abs(residual)
        loss = np.where(size <= DELTA, 0.5 * residual ** 2, DELTA * (size - 0.5 * DELTA)).sum(-1)
        slope = np.clip(residual, -DELTA, DELTA)
        return loss, np.stack([(slope * partial).sum(-1) for partial in partials], axis=-1)


def batched_bfgs(objective: Callable, theta0: np.ndarray, max_iter: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Minimise R independent problems at once; ``objective(theta (r, P), rows (r,))`` gives their losses and
    gradients. BFGS with an Armijo backtracking line search; a row stops when its gradient is below ``GTOL`` or no
    step decreases its loss. Returns the final parameters (R, P) and losses (R,)."""
    theta = np.array(theta0, dtype=float)
    count, size = theta.shape
    eye = np.eye(size)
    loss, grad = objective(theta, np.arange(count))
    inverse = np.tile(eye, (count, 1, 1))
    active = np.isfinite(loss)
    for _ in range(max_iter):
        active &= np.abs(grad).max(1) > GTOL
        rows = np.flatnonzero(active)
        if not rows.size:
            break
        g = grad[rows]
        direction = -np.einsum("kij,kj->ki", inverse[rows], g)
        slope = np.einsum("ki,ki->k", direction, g)
        uphill = ~(slope < 0)
        inverse[rows[uphill]] = eye
        direction[uphill], slope[uphill] = -g[uphill], -np.einsum("ki,ki->k", g[uphill], g[uphill])
        step = np.ones(rows.size)
        new_theta, new_loss, new_grad = np.empty_like(direction), np.full(rows.size, np.nan), np.empty_like(g)
        pending = np.arange(rows.size)
        for _ in range(60):
            trial = theta[rows[pending]] + step[pending, None] * direction[pending]
            trial_loss, trial_grad = objective(trial, rows[pending])
            accepted = trial_loss <= loss[rows[pending]] + 1e-4 * step[pending] * slope[pending]
            done = pending[accepted]
            new_theta[done], new_loss[done], new_grad[done] = trial[accepted], trial_loss[accepted], \
                trial_grad[accepted]
            pending = pending[~accepted]
            if not pending.size:
                break
            step[pending] *= 0.5
        moved = new_loss < loss[rows] - FTOL * (1 + np.abs(loss[rows]))  # NaN: no step was accepted
        active[rows[~moved]] = False
        rows = rows[moved]
        s, y = new_theta[moved] - theta[rows], new_grad[moved] - grad[rows]
        theta[rows], loss[rows], grad[rows] = new_theta[moved], new_loss[moved], new_grad[moved]
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            sy = np.einsum("ki,ki->k", s, y)
            rho = 1.0 / sy
            curved = (sy > 1e-12 * np.linalg.norm(s, axis=1) * np.linalg.norm(y, axis=1)) & np.isfinite(rho)
            rows, s, y, rho = rows[curved], s[curved], y[curved], rho[curved, None, None]
            left = eye - rho * np.einsum("ki,kj->kij", s, y)
            updated = left @ inverse[rows] @ left.transpose(0, 2, 1) + rho * np.einsum("ki,kj->kij", s, s)
        inverse[rows] = np.where(np.isfinite(updated).all(axis=(1, 2))[:, None, None], updated, eye)
    return theta, loss


def grid_search(law: Law, x: np.ndarray, misalignment: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The study's fit of ``law`` to points ``x`` (n, inputs) with misalignment ``1 - score`` (n,): BFGS from every
    start of the grid, the best polished by scipy's BFGS. Returns the best log-space parameters, their loss and every
    start's optimum sorted by loss (for warm-starting bootstrap fits)."""
    log_x, log_l = np.log(x)[None], np.log(misalignment)[None]
    theta, loss = batched_bfgs(lambda t, rows: huber_objective(law, t, log_x, log_l), law.starts())
    order = np.argsort(loss)
    best = polish(law, theta[order[0]], log_x, log_l)
    return best[0], best[1], theta[order]


def polish(law: Law, theta: np.ndarray, log_x: np.ndarray, log_l: np.ndarray) -> tuple[np.ndarray, float]:
    """scipy's BFGS (the study's optimiser) from ``theta``; the better of start and result."""
    def single(t):
        loss, grad = huber_objective(law, t[None], log_x, log_l)
        return loss[0], grad[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BFGS reports precision loss on the Huber loss's kinks
        result = minimize(single, theta, jac=True, method="BFGS")
    start = single(theta)[0]
    return (result.x, float(result.fun)) if result.fun <= start else (np.array(theta, float), float(start))


def bootstrap_fits(law: Law, x: np.ndarray, misalignment: np.ndarray, starts: np.ndarray, samples: np.ndarray):
    """Refit on each bootstrap resample (rows of ``samples``: point indices) from ``starts`` (the full data's best
    local optima); the best per resample. Returns log-space parameters (B, P) and losses (B,)."""
    log_x, log_l = np.log(x)[samples], np.log(misalignment)[samples]  # (B, n, inputs), (B, n)
    count = len(starts)
    owner = np.repeat(np.arange(len(samples)), count)
    theta, loss = batched_bfgs(
        lambda t, rows: huber_objective(law, t, log_x[owner[rows]], log_l[owner[rows]]),
        np.tile(starts, (len(samples), 1)))
    theta, loss = theta.reshape(len(samples), count, -1), loss.reshape(len(samples), count)
    best = np.argmin(np.where(np.isfinite(loss), loss, np.inf), axis=1)
    pick = np.arange(len(samples))
    return theta[pick, best], loss[pick, best]


def distinct(theta: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` rows of ``theta`` (sorted best first) that differ after rounding to 3 decimals."""
    theta = theta[np.isfinite(theta).all(1)]
    _, first = np.unique(np.round(theta, 3), axis=0, return_index=True)
    return theta[np.sort(first)[:count]]
