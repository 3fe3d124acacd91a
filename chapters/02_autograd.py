# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Derivatives, gradient descent and autograd
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-course/executable-deep-learning/blob/main/chapters/02_autograd.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-course/executable-deep-learning/main?labpath=chapters%2F02_autograd.ipynb)
#
# A model is a function with knobs. Learning is turning the knobs until the model's outputs match
# the data, and a derivative tells us which way to turn each knob and how hard. This chapter builds
# that machinery three times: with finite differences, by hand with the chain rule, and with
# PyTorch's autograd. At every step we check that the three agree.
#
# **What you will learn**
#
# - to see learning as parameter estimation: a model, a loss that scores it, a gradient and an update rule;
# - to compute derivatives numerically, by hand with the chain rule, and automatically, and to use one
#   to check another (gradient checking);
# - to read a computational graph forward (values) and backward (gradients), and why a sum in the
#   forward pass becomes a broadcast in the backward pass;
# - why gradient descent diverges or crawls, how the curvature of the loss sets the largest usable
#   learning rate (about 2/λ_max), and why normalizing the input fixes both;
# - to use `torch.autograd` correctly: `requires_grad`, `backward`, accumulation and zeroing,
#   `no_grad`, `detach`, and your own `autograd.Function`;
# - that autograd records the operations that actually run, so loops and `if`s are no obstacle, and
#   that a backward pass from a vector output is a vector-Jacobian product (`backward(gradient=v)`);
# - to replace hand-written updates with `torch.optim` (SGD, Adam), and to hold out validation data
#   without letting it leak into the graph.
#
# *Runs on a CPU in about 1 minute.*

# %%
import sys
if "google.colab" in sys.modules:  # Colab only: add the course's package and what Colab lacks, keep Colab's torch
    # tested against a simulated Colab runtime (2026-12): Python 3.11, torch 2.14.1, fastai 2.8.12, numpy 2.4.6, pandas 3.1.1
    # %pip install -q "course-utils[colab] @ git+https://github.com/dl-course/executable-deep-learning@main"
from course_utils import setup, check
device = setup()

# %% [markdown]
# Every tensor in this chapter is tiny (the biggest is 200 × 100), so we compute everything on the
# CPU, whatever `device` says. Random numbers come from explicit, seeded CPU generators
# (`torch.Generator`), so every number printed below is the same on every machine and every run.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_utils.data import thermometer
from course_utils.plots import draw_gd_explorer, gd_explorer

# %% [markdown]
# ## 1. Learning as estimation
#
# In the early 1600s Johannes Kepler fitted the orbit of Mars to Tycho Brahe's observations. His
# method is still the method of machine learning: collect data, plot it, pick the simplest model
# that could explain it, keep some data back, and check the model on the data it has not seen.
#
# Our data are 11 readings taken from a thermometer whose scale is unlabelled (`t_u`, "unknown
# units"), next to the temperature at the same moments in degrees Celsius (`t_c`). The readings are
# the ones printed in *Deep Learning with PyTorch*, chapter 5; `thermometer()` returns them as two
# float32 tensors.

# %%
t_c, t_u = thermometer()
print("t_c:", t_c)
print("t_u:", t_u)
print("two float32 tensors of shape (11,):",
      t_c.dtype == t_u.dtype == torch.float32 and t_c.shape == t_u.shape == (11,))

# %%
fig, ax = plt.subplots(figsize=(5, 3.4))
ax.scatter(t_u, t_c, color="C0")
ax.set(xlabel="t_u (unknown units)", ylabel="t_c (°C)", title="The thermometer readings")
plt.show()

# %% [markdown]
# The points lie close to a straight line, so the simplest model is linear:
#
# $$t_p = w \cdot t_u + b,$$
#
# with a weight $w$ and a bias $b$: two knobs. We start them at $w = 1$ and $b = 0$, as 0-d tensors.
# The model and the loss are ordinary Python functions of tensors.

# %%
def model(t_u, w, b):
    """The linear model: one prediction per reading."""
    return w * t_u + b


def loss_fn(t_p, t_c):
    """Mean squared error between predictions and targets."""
    squared_diffs = (t_p - t_c) ** 2
    return squared_diffs.mean()


w = torch.ones(())
b = torch.zeros(())
t_p = model(t_u, w, b)
loss = loss_fn(t_p, t_c)
print("predictions:", t_p)
print(f"loss at w=1, b=0: {loss.item():.4g}")
print("the loss is a finite 0-d tensor:", loss.ndim == 0 and bool(torch.isfinite(loss)))

# %% [markdown]
# **Broadcasting, again (from 01).** `w` has shape `()` and `t_u` has shape `(11,)`, so `w * t_u`
# stretches `w` over all 11 readings without copying it. One call to `model` computes every
# prediction at once; no Python loop.

# %%
print("shapes:", tuple(w.shape), "*", tuple(t_u.shape), "+", tuple(b.shape), "->", tuple(model(t_u, w, b).shape))

# %% [markdown]
# **Why squared error?** The loss turns "how wrong is the model" into one number we can minimize.
# The absolute error $|t_p - t_c|$ would work too. For a linear model both are **convex** in
# $(w, b)$: one valley, no false minima. But the absolute error has a kink at its minimum, where its
# slope jumps from −1 to +1, so the slope says nothing about how close we are. The squared error is
# **smooth**: its slope shrinks as we approach the minimum, which is just what a method that follows
# the slope needs. It also punishes big errors more than small ones (an error of 10 costs 100, two
# errors of 5 cost 50), so the fit will not leave one reading far off to get the others exactly right.

# %%
err = torch.linspace(-3, 3, 301)
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for ax, values, name in zip(axes, [err.abs(), err**2], ["absolute error |x|", "squared error x²"]):
    ax.plot(err, values)
    ax.set(xlabel="prediction − target", title=name)
plt.show()

# %% [markdown]
# ## 2. Derivatives from scratch
#
# To improve the loss we need to know how it changes when we nudge a knob: its derivative. We start
# with the definition and build up, following *Deep Learning from Scratch* (Weidman), chapter 1.
#
# ### Finite differences
#
# The derivative of $f$ at $x$ is the limit of the slope $(f(x+\delta) - f(x))/\delta$ as $\delta \to 0$.
# On a computer we cannot take the limit, so we pick a small $\delta$. The **central difference**
# looks both ways,
#
# $$f'(x) \approx \frac{f(x + \delta) - f(x - \delta)}{2\delta},$$
#
# and is much more accurate than the one-sided **forward difference**: by Taylor's theorem its error
# shrinks like $\delta^2$ instead of $\delta$.

# %%
def deriv(f, x, delta=1e-3):
    """Central-difference estimate of f'(x), elementwise for array or tensor inputs."""
    return (f(x + delta) - f(x - delta)) / (2 * delta)


def forward_deriv(f, x, delta=1e-3):
    """Forward-difference estimate of f'(x): cruder, for comparison."""
    return (f(x + delta) - f(x)) / delta


x = np.array([0.0, 1.0, 2.0])
print("d/dx x² at 0, 1, 2:", deriv(np.square, x))

# %% [markdown]
# How small should $\delta$ be? Smaller is not always better. The estimate has two errors: the
# **truncation** error of the formula, which shrinks as $\delta$ does, and the **round-off** error
# of subtracting two nearly equal floating-point numbers, which grows like $\varepsilon/\delta$,
# where $\varepsilon$ is the machine precision (about 1e-16 in float64, 1e-7 in float32). We measure
# both for $f = \sin$ at $x = 1$, where the exact answer is $\cos 1$.

# %% tags=["nbval-ignore-output"]
deltas = torch.logspace(-1, -12, 45, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(6.5, 4))
best = {}
for dtype, style in [(torch.float64, "-"), (torch.float32, "--")]:
    x0 = torch.tensor(1.0, dtype=dtype)
    exact = math.cos(1.0)
    for name, rule in [("central", deriv), ("forward", forward_deriv)]:
        errors = torch.stack([(rule(torch.sin, x0, d.to(dtype)).double() - exact).abs() for d in deltas])
        errors = errors.clamp_min(1e-17)  # an exact hit would be log(0)
        label = f"{name}, {str(dtype).replace('torch.', '')}"
        ax.loglog(deltas, errors, style, label=label)
        best[label] = (deltas[errors.argmin()].item(), errors.min().item())
ax.invert_xaxis()
ax.set(xlabel="δ (smaller to the right)", ylabel="|error|", title="Finite-difference error for sin'(1)")
ax.legend(fontsize=8)
plt.show()
for label, (d, e) in best.items():
    print(f"{label:18s} best δ ≈ {d:.0e}, smallest error {e:.1e}")

# %% [markdown]
# The smallest errors are round-off, so their digits differ from machine to machine; what holds
# everywhere is their size:

# %%
# sweep: log10 float32 / float64 best central error 6.261..6.261 over 6 runs; claim > 3
print("float32 bottoms out far above float64 (over 1000x):",
      best["central, float32"][1] > 1000 * best["central, float64"][1])
# sweep: log10 forward / central best float64 error 3.827..3.827 over 6 runs; claim > 1
print("central beats forward at its best δ (over 10x):",
      best["central, float64"][1] * 10 < best["forward, float64"][1])

# %% [markdown]
# Read the plot from left to right. At large $\delta$ the truncation error dominates, and the
# central difference (slope 2 on the log-log axes) falls much faster than the forward one (slope
# 1). Then round-off takes over and the error climbs again. In float32 the best achievable error is
# about a million times worse, and at the far right $x \pm \delta$ rounds to $x$ itself, so the
# estimate becomes 0.
# The lesson for later: **numerical gradient checks belong in float64**, with $\delta$ around 1e-3
# to 1e-6.
#
# ### The chain rule
#
# Neural networks are functions nested in functions. For $f(x) = f_2(f_1(x))$ the chain rule says
#
# $$\frac{df}{dx} = f_2'\big(f_1(x)\big) \cdot f_1'(x).$$
#
# Note where $f_2'$ is evaluated: at $u = f_1(x)$, the value that actually flowed into $f_2$. Weidman
# computes it exactly like that, with a numerical derivative of each link:

# %%
def square(x):
    return np.power(x, 2)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def leaky_relu(x):
    return np.maximum(0.2 * x, x)


def chain_deriv_2(chain, x):
    """d/dx of chain[1](chain[0](x)) by the chain rule, each link differentiated numerically."""
    f1, f2 = chain
    u = f1(x)                   # forward: the value flowing into f2
    df1dx = deriv(f1, x)        # local derivative of the inner function, at x
    df2du = deriv(f2, u)        # local derivative of the outer function, at u = f1(x)
    return df2du * df1dx


xs = np.arange(-3, 3, 0.01)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, chain, name in [(axes[0], (square, sigmoid), "sigmoid(square(x))"),
                        (axes[1], (sigmoid, square), "square(sigmoid(x))")]:
    composed = lambda x, c=chain: c[1](c[0](x))
    ax.plot(xs, composed(xs), label="f(x)")
    ax.plot(xs, chain_deriv_2(chain, xs), label="chain rule")
    ax.plot(xs, deriv(composed, xs), "k:", label="numeric df/dx")
    ax.set(title=name, xlabel="x")
    ax.legend(fontsize=8)
plt.show()
print("chain rule == numeric derivative of the whole:",
      np.allclose(chain_deriv_2((square, sigmoid), xs), deriv(lambda x: sigmoid(square(x)), xs), atol=1e-6))

# %% [markdown]
# The order matters: $\sigma(x^2)$ and $\sigma(x)^2$ are different functions with different
# derivatives, and the chain rule gets both right.
#
# With three functions, $f = f_3(f_2(f_1(x)))$, the rule just grows one more factor:
# $f' = f_3'(f_2(f_1(x))) \cdot f_2'(f_1(x)) \cdot f_1'(x)$. This suggests a two-pass algorithm,
# which is the whole idea of backpropagation:
#
# 1. **Forward pass:** compute $u_1 = f_1(x)$, $u_2 = f_2(u_1)$, $u_3 = f_3(u_2)$, and *store* the
#    intermediate values.
# 2. **Backward pass:** start from $du_3/du_3 = 1$ and walk back, multiplying by one local derivative
#    per link, each evaluated at the stored input of that link.
#
# Here it is with exact local derivatives instead of numerical ones, for
# `[leaky_relu, sigmoid, square]`. (Exercise 02.2 builds the numerical version, for a chain of any length.)

# %%
def sigmoid_grad(u):
    s = sigmoid(u)
    return s * (1 - s)


def leaky_relu_grad(u):
    return np.where(u > 0, 1.0, 0.2)


def square_grad(u):
    return 2 * u


def forward_backward_3(x):
    """Value and derivative of square(sigmoid(leaky_relu(x))) in one forward and one backward pass."""
    u1 = leaky_relu(x)          # forward, storing every intermediate
    u2 = sigmoid(u1)
    u3 = square(u2)
    grad = np.ones_like(x)      # backward: d u3 / d u3 = 1
    grad = grad * square_grad(u2)        # d u3 / d u2, at the stored u2
    grad = grad * sigmoid_grad(u1)       # d u2 / d u1, at the stored u1
    grad = grad * leaky_relu_grad(x)     # d u1 / d x,  at x
    return u3, grad


f3_value, f3_grad = forward_backward_3(xs)
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(xs, f3_value, label="f(x) = square(sigmoid(leaky_relu(x)))")
ax.plot(xs, f3_grad, label="forward/backward")
ax.plot(xs, deriv(lambda x: square(sigmoid(leaky_relu(x))), xs), "k:", label="numeric df/dx")
ax.set(xlabel="x")
ax.legend(fontsize=8)
plt.show()
away_from_kink = np.abs(xs) > 0.01  # leaky_relu has a kink at 0, where the slope jumps
print("backward pass == numeric derivative (away from the kink):",
      np.allclose(f3_grad[away_from_kink], deriv(lambda x: square(sigmoid(leaky_relu(x))), xs)[away_from_kink], atol=1e-6))

# %% [markdown]
# ### Functions of several inputs
#
# A model has more than one knob, so we need derivatives with respect to each input: partial
# derivatives. Two building blocks cover most of what follows.
#
# - A **sum** $a = x + y$ passes the gradient through unchanged to both inputs: $\partial a/\partial x = \partial a/\partial y = 1$.
# - A **product** $a = x \cdot y$ sends each input the *other* input: $\partial a/\partial x = y$ and
#   $\partial a/\partial y = x$.
#
# Take $f(x, y) = \sigma(x + y)$ and $g(x, y) = \sigma(x \cdot y)$ (the second is Weidman's own exercise):

# %%
def f_sum(x, y):
    return sigmoid(x + y)


def f_sum_grads(x, y):
    a = x + y                       # forward
    dfda = sigmoid_grad(a)          # backward through sigma
    return dfda * 1.0, dfda * 1.0   # the sum passes it on unchanged


def f_prod(x, y):
    return sigmoid(x * y)


def f_prod_grads(x, y):
    a = x * y
    dfda = sigmoid_grad(a)
    return dfda * y, dfda * x       # the product swaps its inputs


x_in, y_in = np.array([0.5, -1.2, 2.0]), np.array([1.5, 0.3, -0.7])
for name, fn, grads in [("sigma(x + y)", f_sum, f_sum_grads), ("sigma(x * y)", f_prod, f_prod_grads)]:
    dfdx, dfdy = grads(x_in, y_in)
    numeric_x = deriv(lambda x: fn(x, y_in), x_in)
    numeric_y = deriv(lambda y: fn(x_in, y), y_in)
    print(f"{name}: df/dx = {np.round(dfdx, 4)}, df/dy = {np.round(dfdy, 4)}, "
          f"match numeric: {np.allclose(dfdx, numeric_x, atol=1e-8) and np.allclose(dfdy, numeric_y, atol=1e-8)}")

# %% [markdown]
# ### Vectors and matrices
#
# Now the input is a matrix $X$ (rows are examples, columns are features), the knobs are a weight
# matrix $W$, and the function is $L = \sum_{ij} \sigma(XW)_{ij}$: a matrix product, an elementwise
# function and a sum. This is a one-layer network with a crude loss. We want $\partial L/\partial X$,
# a matrix of the same shape as $X$: how $L$ changes when one element of $X$ moves.
#
# Forward, with names for the intermediates: $N = XW$, $S = \sigma(N)$, $L = \sum S$. Backward,
# link by link:
#
# - $\partial L/\partial S$ is a matrix of **ones** shaped like $S$: every element of $S$ enters the
#   sum with weight 1. *The sum in the forward pass becomes a broadcast in the backward pass*: one
#   scalar gradient is copied to every element that was summed.
# - $\partial L/\partial N = \partial L/\partial S \odot \sigma'(N)$, elementwise.
# - For the matrix product, $\partial L/\partial X = \partial L/\partial N \cdot W^\top$. In the vector
#   case $\nu = x \cdot W$, $\partial \nu/\partial x = W^\top$, and likewise $\partial \nu / \partial W = x^\top$.
#   The shapes tell you where the transpose goes: $\partial L/\partial N$ is (3, 2), $W$ is (3, 2) and
#   the answer must be (3, 3), so it has to be $(3, 2) \cdot (2, 3)$.
#
# (The reverse also holds: a broadcast in the forward pass, such as `w * t_u` with a scalar `w`,
# becomes a **sum** in the backward pass, because the one `w` influenced all 11 predictions.)
#
# First the vector case on its own: one example $x$ of shape (1, 3) and $W$ of shape (3, 1), so
# $\nu = xW$ is a single number and $\partial \nu/\partial x$ should be $W^\top$, one entry per
# element of $x$. Nudging each element of $x$ in turn confirms it:

# %%
x_vec = np.array([[0.4, -1.1, 2.0]])          # (1, 3)
W_vec = np.array([[0.5], [-0.3], [1.2]])      # (3, 1)


def matmul_forward(x, W):
    return x @ W


def matmul_backward_first(x, W):
    """d(x @ W)/dx for one example: W transposed, shaped like x."""
    return W.T


numeric = np.zeros_like(x_vec)
for j in range(x_vec.shape[1]):
    bumped_up, bumped_down = x_vec.copy(), x_vec.copy()
    bumped_up[0, j] += 1e-4
    bumped_down[0, j] -= 1e-4
    numeric[0, j] = (matmul_forward(bumped_up, W_vec) - matmul_forward(bumped_down, W_vec)).item() / 2e-4
print("dν/dx = Wᵀ:", matmul_backward_first(x_vec, W_vec), "  numeric:", np.round(numeric, 6))
print("match:", np.allclose(matmul_backward_first(x_vec, W_vec), numeric))

# %% [markdown]
# The other half of the statement, $\partial \nu/\partial W = x^\top$, gets the same test: nudge each
# element of $W$ in turn. The answer has $W$'s shape (3, 1), and each entry is the element of $x$
# that the weight multiplies.

# %%
def matmul_backward_second(x, W):
    """d(x @ W)/dW for one example: x transposed, shaped like W."""
    return x.T


numeric_W = np.zeros_like(W_vec)
for i in range(W_vec.shape[0]):
    W_up, W_down = W_vec.copy(), W_vec.copy()
    W_up[i, 0] += 1e-4
    W_down[i, 0] -= 1e-4
    numeric_W[i, 0] = (matmul_forward(x_vec, W_up) - matmul_forward(x_vec, W_down)).item() / 2e-4
print("dν/dW = xᵀ:", matmul_backward_second(x_vec, W_vec).ravel(), "  numeric:", np.round(numeric_W.ravel(), 6))
print("match:", np.allclose(matmul_backward_second(x_vec, W_vec), numeric_W))

# %% [markdown]
# Now the full matrix function. We use Weidman's seeded example so you can compare with the book: the legacy NumPy generator
# with seed 190204 (`RandomState` is the same stream as `np.random.seed(190204)`, and is frozen
# across NumPy versions).

# %%
rng = np.random.RandomState(190204)
X = rng.randn(3, 3)
W = rng.randn(3, 2)


def matrix_function_forward_sum(X, W):
    N = X @ W
    S = sigmoid(N)
    return S.sum()


def matrix_function_backward_sum(X, W):
    N = X @ W                         # forward, keeping N
    S = sigmoid(N)
    dLdS = np.ones_like(S)            # the sum's backward: a broadcast of ones
    dLdN = dLdS * sigmoid_grad(N)     # elementwise function: multiply elementwise
    dLdX = dLdN @ W.T                 # matrix product: (3, 2) @ (2, 3)
    return dLdX


L_value = matrix_function_forward_sum(X, W)
dLdX = matrix_function_backward_sum(X, W)
print(f"L = {L_value:.4f}")
print("dL/dX =\n", np.round(dLdX, 4))
print("first row of dL/dX:", np.round(dLdX[0], 4))

# %% [markdown]
# **Gradient check.** Is that right? Perturb one element of $X$ and watch $L$: the change divided by
# the step should be close to the analytic gradient for that element. This is the single most
# useful debugging tool for hand-written backward passes.

# %%
X_perturbed = X.copy()
X_perturbed[0, 0] += 0.01
slope_estimate = (matrix_function_forward_sum(X_perturbed, W) - L_value) / 0.01
print(f"perturbation estimate of dL/dX[0,0] (step 0.01): {slope_estimate:.3f}")
print(f"analytic dL/dX[0,0]:                            {dLdX[0, 0]:.4f}")
print("agree to 1e-3:", abs(slope_estimate - dLdX[0, 0]) < 1e-3)

# %%
x11 = np.linspace(X[0, 0] - 2, X[0, 0] + 2, 101)
L_curve = []
for v in x11:
    X_var = X.copy()
    X_var[0, 0] = v
    L_curve.append(matrix_function_forward_sum(X_var, W))
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(x11, L_curve, label="L as X[0,0] varies")
ax.plot(x11, L_value + dLdX[0, 0] * (x11 - X[0, 0]), "--", label="tangent with slope dL/dX[0,0]")
ax.plot(X[0, 0], L_value, "ko")
ax.set(xlabel="X[0,0]", ylabel="L", title="Gradient check: the analytic slope is the tangent")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 3. Gradient descent on the thermometer, by hand
#
# Back to the thermometer. We want the $(w, b)$ that minimize the loss. Think of two knobs: turn
# each one a little in both directions and see which way the loss goes down. That is a finite
# difference again, one per knob:

# %%
delta = 0.1
loss_rate_of_change_w = (loss_fn(model(t_u, w + delta, b), t_c) - loss_fn(model(t_u, w - delta, b), t_c)) / (2.0 * delta)
loss_rate_of_change_b = (loss_fn(model(t_u, w, b + delta), t_c) - loss_fn(model(t_u, w, b - delta), t_c)) / (2.0 * delta)
print(f"finite differences at w=1, b=0: dL/dw ≈ {loss_rate_of_change_w.item():.4g}, dL/db ≈ {loss_rate_of_change_b.item():.4g}")

# %% [markdown]
# Both slopes are positive, so both knobs should turn down; the update
# `w = w - learning_rate * slope` does exactly that, in proportion to the slope. The
# **learning rate** scales the step.
#
# Finite differences cost two loss evaluations per knob: fine for two knobs, hopeless for a billion.
# The chain rule gives all the slopes at once. With $N$ readings,
#
# $$L = \frac{1}{N}\sum_i (t_{p,i} - t_{c,i})^2, \qquad t_{p,i} = w\, t_{u,i} + b,$$
#
# $$\frac{\partial L}{\partial t_{p,i}} = \frac{2}{N}(t_{p,i} - t_{c,i}), \qquad
# \frac{\partial t_{p,i}}{\partial w} = t_{u,i}, \qquad \frac{\partial t_{p,i}}{\partial b} = 1,$$
#
# $$\frac{\partial L}{\partial w} = \sum_i \frac{\partial L}{\partial t_{p,i}}\, t_{u,i}, \qquad
# \frac{\partial L}{\partial b} = \sum_i \frac{\partial L}{\partial t_{p,i}}.$$
#
# The sums over readings are the backward of the broadcast in the forward pass: one `w` was
# stretched over 11 readings, so its gradient collects 11 contributions.

# %%
def dloss_fn(t_p, t_c):
    """dL/dt_p for the mean squared error: one number per reading."""
    return 2 * (t_p - t_c) / t_p.size(0)


def dmodel_dw(t_u, w, b):
    return t_u


def dmodel_db(t_u, w, b):
    return 1.0


def grad_fn(t_u, t_c, t_p, w, b):
    """The gradient [dL/dw, dL/db] of the MSE of the linear model, by the chain rule."""
    dloss_dtp = dloss_fn(t_p, t_c)
    dloss_dw = dloss_dtp * dmodel_dw(t_u, w, b)
    dloss_db = dloss_dtp * dmodel_db(t_u, w, b)
    return torch.stack([dloss_dw.sum(), dloss_db.sum()])  # the sum undoes the broadcast


g_analytic = grad_fn(t_u, t_c, model(t_u, w, b), w, b)
print(f"analytic gradient at w=1, b=0: dL/dw = {g_analytic[0].item():.4g}, dL/db = {g_analytic[1].item():.4g}")

# %% [markdown]
# The loss is a quadratic function of $(w, b)$, and for a quadratic the central difference is exact
# apart from round-off: the $\delta^2$ error term involves the third derivative, which is zero.
# So the finite differences above should match the analytic gradient to float precision. We check
# in float64, where "float precision" is tight.

# %%
t_u64, t_c64 = t_u.double(), t_c.double()
w64, b64 = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
fd = torch.stack([deriv(lambda v: loss_fn(model(t_u64, v, b64), t_c64), w64, 0.1),
                  deriv(lambda v: loss_fn(model(t_u64, w64, v), t_c64), b64, 0.1)])
exact = grad_fn(t_u64, t_c64, model(t_u64, w64, b64), w64, b64)
print("central differences == analytic gradient (rtol 1e-9):", torch.allclose(fd, exact, rtol=1e-9))

# %% [markdown]
# Now we have everything for a training loop. Each epoch: predict, score, compute the gradient, and
# step against it. We write every argument out in the signature (the book's version has a hidden
# `print_params` flag) and return the loss history and the path of $(w, b)$ for plotting. The loop
# stops as soon as the loss stops being a finite number.

# %%
def training_loop(n_epochs, learning_rate, params, t_u, t_c, print_every=0):
    """Plain gradient descent on params = tensor([w, b]).

    Returns (final params, list of the loss at each epoch, tensor of every (w, b) visited, start included).
    Prints epochs 1-3 and every `print_every`-th epoch (0: never).
    """
    losses, path = [], [params]
    for epoch in range(1, n_epochs + 1):
        w, b = params
        t_p = model(t_u, w, b)                   # forward
        loss = loss_fn(t_p, t_c)
        grad = grad_fn(t_u, t_c, t_p, w, b)      # backward, by hand
        params = params - learning_rate * grad   # the update
        losses.append(loss.item())
        path.append(params)
        if print_every and (epoch <= 3 or epoch % print_every == 0):
            print(f"epoch {epoch:5d}   loss {loss.item():10.4g}   w {params[0].item():10.4g}   b {params[1].item():10.4g}")
        if not torch.isfinite(loss):
            print(f"epoch {epoch:5d}   the loss is {loss.item()}: stopping")
            break
    return params, losses, torch.stack(path)


# %% [markdown]
# **Run A:** learning rate 1e-2, raw readings, starting from $w = 1$, $b = 0$, 100 epochs.

# %% tags=["nbval-ignore-output"]
params_a, losses_a, path_a = training_loop(100, 1e-2, torch.tensor([1.0, 0.0]), t_u, t_c, print_every=10)

# %% [markdown]
# The losses above come from float32 arithmetic, and their last digits can differ on your machine
# (another CPU adds in another order). So from here on, each training run prints its numbers in one
# cell and checks its conclusions in the next, and those conclusions hold on every machine.

# %%
first_overflow = next((epoch for epoch, v in enumerate(losses_a, start=1) if not math.isfinite(v)), None)
diverged = first_overflow is not None
# sweep: Run A first non-finite epoch 11..11 over 6 runs; claim <= 50
print("diverged: the loss overflows before epoch 50:", diverged and first_overflow <= 50)

# %% [markdown]
# The loss grows by a factor of thousands per epoch until it overflows to `inf` and then `nan`.
# The book files this under "overtraining", but nothing here is being over-trained: the updates
# **diverge**. Each step overshoots the minimum by more than it started from, so the parameters
# swing back and forth with growing amplitude. (Overfitting, a different problem, comes in
# section 9.) The obvious remedy is a smaller learning rate.
#
# **Run B:** learning rate 1e-4, raw readings, 100 epochs.

# %% tags=["nbval-ignore-output"]
params_b, losses_b, path_b = training_loop(100, 1e-4, torch.tensor([1.0, 0.0]), t_u, t_c, print_every=20)
print(f"b after 100 epochs: {params_b[1].item():.4g}")

# %%
print("every loss finite:", all(math.isfinite(v) for v in losses_b))
# sweep: Run B last loss / first loss 0.01645..0.01645 over 6 runs; claim < 0.5
print("last loss below half the first:", losses_b[-1] / losses_b[0] < 0.5)
# sweep: Run B abs(b) after 100 epochs 0.04378..0.04378 over 6 runs; claim < 1
print("bias barely moved (|b| < 1):", abs(params_b[1].item()) < 1)

# %% [markdown]
# Stable, but slow: the weight settles within a few epochs and then the loss creeps, because the bias
# hardly moves. Why? Look at the two components of the gradient at the start:

# %%
t_un = 0.1 * t_u  # the scaled input we will try next
ratio = {}
for name, inp in [("raw t_u", t_u), ("scaled t_un = 0.1 t_u", t_un)]:
    g = grad_fn(inp, t_c, model(inp, w, b), w, b)
    ratio[name] = (g[0].abs() / g[1].abs()).item()
    print(f"{name:22s} |dL/dw| = {g[0].abs().item():8.4g}   |dL/db| = {g[1].abs().item():8.4g}   ratio {ratio[name]:.3g}")
print("raw: |dL/dw| / |dL/db| > 20:", ratio["raw t_u"] > 20)
print("scaled: |dL/dw| / |dL/db| < 10:", ratio["scaled t_un = 0.1 t_u"] < 10)

# %% [markdown]
# On the raw input the weight's gradient is far larger than the bias's, because $\partial L/\partial w$
# carries a factor $t_u$ (about 50) that $\partial L/\partial b$ does not. One learning rate serves
# both knobs: large enough to move $b$, and it throws $w$ over the edge; small enough for $w$, and $b$
# barely moves.
#
# > **Sidebar: eigenvalues without linear algebra.** Skip this if the words *Hessian* and *eigenvalue*
# > are familiar. A function of one knob has one second derivative, its curvature: how fast the slope
# > changes as you move. With two knobs there are four second derivatives (how the slope along $w$
# > changes when you move $w$, or $b$; and the same for the slope along $b$), and the **Hessian** is
# > that 2 × 2 table. A bowl-shaped loss has two special, perpendicular directions, its
# > **eigenvectors**: step along one of them and the slope changes along that same direction only,
# > so along it the bowl is an ordinary parabola. Its curvature along that direction is the
# > **eigenvalue** $\lambda$. One steep direction and one flat one make a long, narrow trench. A
# > cell after the next one checks the defining property, $H v = \lambda v$, on the thermometer's Hessian.
#
# **Curvature makes this exact.** Our loss is a quadratic bowl in $(w, b)$. Its curvature is the
# Hessian, the matrix of second derivatives, which here is constant:
#
# $$H = \frac{2}{N}\begin{pmatrix} \sum t_u^2 & \sum t_u \\ \sum t_u & N \end{pmatrix}.$$
#
# Along an eigenvector of $H$ with eigenvalue $\lambda$, one gradient step multiplies the distance to
# the minimum by $(1 - \text{lr}\cdot\lambda)$. That factor has magnitude below 1 only when
# $\text{lr} < 2/\lambda$. So gradient descent converges if and only if
#
# $$\text{lr} < \text{lr}_{\text{crit}} = \frac{2}{\lambda_{\max}},$$
#
# and the slowest direction shrinks by $(1 - \text{lr}\cdot\lambda_{\min})$ per step. The ratio
# $\kappa = \lambda_{\max}/\lambda_{\min}$, the **condition number**, says how many steps that costs.

# %%
def mse_hessian(x):
    """The (constant) Hessian of the MSE of w * x + b with respect to (w, b)."""
    x = x.double()
    n = x.numel()
    return (2.0 / n) * torch.tensor([[(x * x).sum().item(), x.sum().item()],
                                     [x.sum().item(), float(n)]], dtype=torch.float64)


crit = {}
for name, inp in [("raw", t_u), ("scaled", t_un)]:
    eig = torch.linalg.eigvalsh(mse_hessian(inp))  # ascending
    crit[name] = 2 / eig[-1].item()
    print(f"{name:6s}  λ_min = {eig[0].item():.4g}   λ_max = {eig[-1].item():.4g}   "
          f"condition number {(eig[-1] / eig[0]).item():.4g}   critical lr 2/λ_max = {crit[name]:.4g}")
print("lr 1e-2 above the critical lr on raw input:", 1e-2 > crit["raw"])
print("lr 1e-2 below the critical lr on scaled input:", 1e-2 < crit["scaled"])
print("lr 1e-4 below the critical lr on both:", 1e-4 < crit["raw"] and 1e-4 < crit["scaled"])

# %% [markdown]
# The sidebar's property, checked: `torch.linalg.eigh` returns the eigenvalues and, as columns, the
# eigenvectors. Multiplying each eigenvector by $H$ only stretches it, by its eigenvalue. On the
# raw input the steep direction is almost pure $w$ and the flat one almost pure $b$.

# %%
lams, vecs = torch.linalg.eigh(mse_hessian(t_u))
for k in range(2):
    v = vecs[:, k]
    print(f"λ = {lams[k].item():9.4g}   direction (w, b) = ({abs(v[0].item()):.3f}, {abs(v[1].item()):.3f}) up to sign"
          f"   H v == λ v: {torch.allclose(mse_hessian(t_u) @ v, lams[k] * v)}")

# %% [markdown]
# Both runs are explained. Run A's learning rate is above the critical value for the raw input, so
# it had to diverge. Run B's is safely below, but the raw problem is so badly conditioned that the
# slow direction (mostly the bias) barely moves in 100 steps. Scaling the input by 0.1 divides the
# big entries of $H$ by 100, raising the critical learning rate past 1e-2 and making the bowl far
# rounder.
#
# **Run C:** the scaled input `t_un = 0.1 * t_u`, learning rate 1e-2, 100 epochs.

# %% tags=["nbval-ignore-output"]
params_c, losses_c, path_c = training_loop(100, 1e-2, torch.tensor([1.0, 0.0]), t_un, t_c, print_every=20)

# %%
# sweep: Run C epochs where the loss rose 0..0 over 6 runs; claim < 1
print("the loss never increases:", sum(b_ > a_ for a_, b_ in zip(losses_c, losses_c[1:])) < 1)
# sweep: Run C final loss - Run B final loss -6.874..-6.874 over 6 runs; claim < -3
print("ends at least 3 below Run B's final loss:", losses_c[-1] < losses_b[-1] - 3)

# %% [markdown]
# The three runs on one log axis. Run A is cut at its first non-finite value (a log axis cannot
# show `inf`).

# %%
def finite_prefix(values):
    """The values up to (not including) the first inf or nan."""
    out = []
    for v in values:
        if not math.isfinite(v):
            break
        out.append(v)
    return out


finite_a = finite_prefix(losses_a)
fig, (ax_a, ax_bc) = plt.subplots(1, 2, figsize=(10, 3.4))
ax_a.semilogy(range(1, len(finite_a) + 1), finite_a, "o-", ms=3, color="C0")
ax_a.set(xlabel="epoch", ylabel="loss", title=f"Run A: lr 1e-2, raw (cut at epoch {len(finite_a)})")
ax_bc.semilogy(range(1, 101), losses_b, color="C1", label="B: lr 1e-4, raw")
ax_bc.semilogy(range(1, 101), losses_c, color="C2", label="C: lr 1e-2, scaled")
ax_bc.set(xlabel="epoch", title="Runs B and C")
ax_bc.legend(fontsize=8)
plt.show()

# %% [markdown]
# **The picture behind normalization.** Compute the loss on a grid of $(w, b)$ values and draw its
# contours, with the paths of runs B and C and the lowest point of the grid (★). Broadcasting does the
# grid in one expression: a grid of shape (200, 200, 1) against 11 readings gives (200, 200, 11)
# squared errors, and `.mean(-1)` averages over the readings. The outer panels show the same window
# of $(w, b)$, and every panel uses the same scale on both axes, because that is the geometry
# gradient descent sees: it steps straight across the contours, perpendicular to them.

# %%
def loss_surface(inp, ws, bs):
    grid_w, grid_b = torch.meshgrid(ws, bs, indexing="xy")           # (200, 200) each
    preds = grid_w[..., None] * inp.double() + grid_b[..., None]       # (200, 200, 11)
    return ((preds - t_c.double()) ** 2).mean(-1)                      # (200, 200)


ws = torch.linspace(-8, 12, 200, dtype=torch.float64)
bs = torch.linspace(-22, 3, 200, dtype=torch.float64)
ws_zoom = torch.linspace(0.1, 1.1, 200, dtype=torch.float64)   # Run B moves less than one unit of w
bs_zoom = torch.linspace(-0.5, 0.5, 200, dtype=torch.float64)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.8))
panels = [(axes[0], t_u, path_b, ws, bs, "raw t_u, Run B (lr 1e-4)"),
          (axes[1], t_u, path_b, ws_zoom, bs_zoom, "the same, zoomed in on Run B"),
          (axes[2], t_un, path_c, ws, bs, "scaled t_un, Run C (lr 1e-2)")]
for ax, inp, path, ws_, bs_, title in panels:
    surface = loss_surface(inp, ws_, bs_)
    levels = np.geomspace(surface.min().item() * 1.05, surface.max().item(), 18)
    ax.contour(ws_, bs_, surface, levels=levels, cmap="viridis", linewidths=0.8)
    ax.plot(path[:, 0], path[:, 1], ".-", color="C3", ms=3, lw=1.2)
    ax.plot(path[0, 0], path[0, 1], "o", color="C3", mfc="none", ms=8)
    if ws_ is ws:   # the zoom does not reach the minimum
        lowest = divmod(surface.argmin().item(), len(ws_))   # (row, column) of the grid's lowest point
        ax.plot(ws_[lowest[1]], bs_[lowest[0]], "*", color="k", ms=10)
    ax.set(xlabel="w", ylabel="b", title=title, aspect="equal")
axes[0].add_patch(plt.Rectangle((0.1, -0.5), 1.0, 1.0, fill=False, edgecolor="0.3", lw=1))  # the zoomed window
fig.tight_layout()
plt.show()

# %% [markdown]
# On the raw input (left and middle) the valley is a long, thin trench: across it the walls are
# steep (large $\lambda_{\max}$), along it the floor is almost flat (tiny $\lambda_{\min}$). Run B is
# too short to see at that scale, so the middle panel zooms in on the small square: it drops into
# the trench in a few steps, nearly straight across (almost pure $w$, the steep direction), and then
# has almost no slope left to follow along the floor, which is almost pure $b$. Scaled (right), the valley is about ten times less elongated (the square root of the
# ratio of the two condition numbers), and Run C heads down along it; given enough epochs it reaches
# the bottom, which is Run C′. Normalizing inputs to similar, modest ranges is one of the cheapest
# and most effective things you can do in deep learning; you will meet it again as data
# normalization and as batch normalization.
#
# **Run C′:** the same as Run C, for 5000 epochs.

# %% tags=["nbval-ignore-output"]
params_cp, losses_cp, path_cp = training_loop(5000, 1e-2, torch.tensor([1.0, 0.0]), t_un, t_c, print_every=1000)
w_cp, b_cp = params_cp
print(f"final loss {losses_cp[-1]:.4g}, w = {w_cp.item():.4g}, b = {b_cp.item():.4g}")

# %%
rel_change = abs(losses_cp[-501] - losses_cp[-1]) / losses_cp[-1]
# sweep: Run C' relative loss change, last 500 epochs 1.059e-06..1.059e-06 over 6 runs; claim < 1e-4
print("relative loss change over the last 500 epochs < 1e-4:", rel_change < 1e-4)
# sweep: Run C' w relative distance to 50/9 0.03392..0.03392 over 6 runs; claim < 0.1
print("w within 10% of 50/9:", abs(w_cp.item() - 50 / 9) < 0.1 * 50 / 9)
# sweep: Run C' b relative distance to -160/9 0.02681..0.02681 over 6 runs; claim < 0.1
print("b within 10% of -160/9:", abs(b_cp.item() + 160 / 9) < 0.1 * 160 / 9)

# %% [markdown]
# The loss has stopped changing. The fitted numbers are suspiciously close to $50/9$ and $-160/9$.
# In the original units, with $t_{un} = 0.1\, t_u$, the line is
# $t_c = (w/10)\, t_u + b \approx \tfrac{5}{9} t_u - \tfrac{160}{9} = \tfrac{5}{9}(t_u - 32)$: the
# conversion from Fahrenheit to Celsius. The mystery thermometer reads in °F. Note the argument
# unpacking `model(t_un, *params)`, which passes the two elements of `params` as `w` and `b`.

# %%
grid_u = torch.linspace(15, 90, 100)
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.scatter(t_u, t_c, color="C0", label="readings", zorder=3)
ax.plot(grid_u, model(0.1 * grid_u, *params_cp), color="C1", label="fitted line (Run C′)")
ax.plot(grid_u, (grid_u - 32) * 5 / 9, "k--", lw=1, label="exact: C = (F − 32) · 5/9")
ax.set(xlabel="t_u (°F, it turns out)", ylabel="t_c (°C)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 4. SGD on a quadratic, the fastai way
#
# *Deep Learning for Coders* (fastai, chapter 4) lists the same loop as seven steps:
#
# 1. **Initialize** the parameters (randomly is fine);
# 2. **predict** with the model;
# 3. compute the **loss**;
# 4. compute the **gradient** of the loss with respect to each parameter;
# 5. **step**: move each parameter a little against its gradient;
# 6. **repeat** from step 2;
# 7. **stop** when the model is good enough (or you run out of time).
#
# Step 4 is where PyTorch can help. Mark a tensor with `requires_grad_()`, compute something from
# it, call `backward()`, and the derivative appears in `.grad`. Here is the gradient of $x^2$ at 3,
# which should be $2 \cdot 3 = 6$, and the gradient of $\sum x^2$ for a vector, which is $2x$. (Section 5
# looks at how this works.)

# %%
def f_square(x):
    return (x ** 2).sum()


xt = torch.tensor(3.0).requires_grad_()
yt = f_square(xt)
yt.backward()
print("d(x²)/dx at 3:", xt.grad)

xt = torch.tensor([3.0, 4.0, 10.0]).requires_grad_()
yt = f_square(xt)
yt.backward()
print("sum of squares:", yt.item(), "  gradient:", xt.grad)

# %% [markdown]
# The example: a roller coaster's speed, measured once a second for 20 seconds as it goes over a
# hump. The true speed is a parabola, the measurements are noisy. We generate the data with a seeded
# CPU generator.

# %%
gen = torch.Generator().manual_seed(42)
time_s = torch.arange(20).float()
speed = torch.randn(20, generator=gen) * 3 + 0.75 * (time_s - 9.5) ** 2 + 1

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.scatter(time_s, speed)
ax.set(xlabel="time (s)", ylabel="speed", title="Noisy speed measurements")
plt.show()

# %% [markdown]
# The model is a quadratic $a t^2 + b t + c$ with random initial parameters, the loss is the mean
# squared error, and `apply_step` is steps 2 to 5. The update happens inside `torch.no_grad()`, so
# that PyTorch does not record the update itself as part of the graph; setting `.grad` to `None`
# afterwards clears it for the next step (section 5 explains why that is needed).

# %%
def quad(t, params):
    a, b, c = params
    return a * (t ** 2) + b * t + c


def mse(preds, targets):
    return ((preds - targets) ** 2).mean()


def apply_step(params, lr, history):
    preds = quad(time_s, params)
    loss = mse(preds, speed)
    loss.backward()
    with torch.no_grad():
        params -= lr * params.grad
    params.grad = None
    history.append(loss.item())
    return preds.detach()


init_params = torch.randn(3, generator=gen)
params_q = init_params.clone().requires_grad_()
history_small = []
snapshots = {}
for step in range(10):
    preds = apply_step(params_q, 1e-5, history_small)
    snapshots[step] = preds
history_small.append(mse(quad(time_s, params_q), speed).item())
snapshots[10] = quad(time_s, params_q).detach()
print("loss before each step, and at the end:", ", ".join(f"{v:.4g}" for v in history_small))

# %%
# sweep: lr 1e-5 steps where the loss did not fall 0..0 over 6 runs; claim < 1
print("lr 1e-5: the loss strictly decreases at each of 10 steps:",
      sum(b_ >= a_ for a_, b_ in zip(history_small, history_small[1:])) < 1)

# %%
fig, axes = plt.subplots(1, 6, figsize=(13, 2.4), sharey=True)
for ax, step in zip(axes, [0, 2, 4, 6, 8, 10]):
    ax.scatter(time_s, speed, s=8)
    ax.plot(time_s, snapshots[step], color="C3")
    ax.set(title=f"after {step} steps", xlabel="time", ylim=(-40, 100))
plt.show()

# %% [markdown]
# The predictions (red) start as nonsense (the first panel's curve dives off the bottom) and bend
# toward the data. The learning rate 1e-5 looks tiny, so why not larger? For a quadratic loss the
# answer is the curvature again. Whatever the model, "too small", "right" and "too large" look like
# this on a one-dimensional parabola $f(x) = x^2$, whose curvature is 2 everywhere, so its critical
# learning rate is $2/2 = 1$:

# %%
def descend_parabola(lr, x0=-2.0, steps=8):
    xs_ = [x0]
    for _ in range(steps):
        xs_.append(xs_[-1] - lr * 2 * xs_[-1])   # the gradient of x² is 2x
    return np.array(xs_)


grid = np.linspace(-4.5, 4.5, 200)
fig, axes = plt.subplots(1, 4, figsize=(13, 3), sharey=True)
for ax, (lr, title) in zip(axes, [(0.05, "too small: lr 0.05"), (0.4, "about right: lr 0.4"),
                                  (0.9, "bouncing: lr 0.9"), (1.05, "too large: lr 1.05")]):
    path_1d = descend_parabola(lr)
    ax.plot(grid, grid ** 2, color="gray")
    ax.plot(path_1d, path_1d ** 2, "o-", color="C3", ms=4, lw=1)
    ax.plot(path_1d[0], path_1d[0] ** 2, "o", color="k", ms=6)
    ax.set(title=title, xlabel="x", ylim=(-0.5, 20))
plt.show()

# %% [markdown]
# With lr 0.05 each step covers a tenth of the remaining distance. With 0.4 it lands close in two
# steps. With 0.9 it overshoots to the other side every time but still closes in, because
# $|1 - 0.9 \cdot 2| = 0.8 < 1$. With 1.05, $|1 - 2.1| = 1.1$: every step lands further out.
#
# For the roller coaster, the loss is quadratic in $(a, b, c)$ and its Hessian is
# $\frac{2}{N} A^\top A$, where the design matrix $A$ has the columns $t^2$, $t$ and $1$. With $t$ up to 19,
# the $t^2$ column makes $\lambda_{\max}$ large:

# %%
design = torch.stack([time_s ** 2, time_s, torch.ones(20)], dim=1).double()
hessian_q = (2 / len(time_s)) * design.T @ design
lam_max_q = torch.linalg.eigvalsh(hessian_q)[-1].item()
crit_q = 2 / lam_max_q
print(f"λ_max = {lam_max_q:.3g}, critical lr = {crit_q:.2e}")

print("lr 1e-5 below the critical lr:", 1e-5 < crit_q, "   lr 1e-4 above it:", 1e-4 > crit_q)

# %% tags=["nbval-ignore-output"]
history_large = []
params_big = init_params.clone().requires_grad_()
for step in range(10):
    apply_step(params_big, 1e-4, history_large)
history_large.append(mse(quad(time_s, params_big), speed).item())
print("lr 1e-4 losses:", ", ".join(f"{v:.3g}" for v in history_large))

# %%
# sweep: lr 1e-4 log10(final loss / initial loss) 13.27..13.35 over 6 runs; claim > 1
print("lr 1e-4: after 10 steps the loss is over 10x the initial loss:", history_large[-1] > 10 * history_large[0])

# %% [markdown]
# So the book's 1e-5 is a bit over a quarter of the critical value, and ten times more diverges,
# exactly as the Hessian predicts:

# %%
print(f"1e-5 / critical lr = {1e-5 / crit_q:.2f}")

# %% [markdown]
# **Why the fit stalls.** The ten steps above bring the loss from about 26,000 down to about 677,
# and there it sits. Run for longer at 1e-5 and it crawls: it is still about 400 after 100,000
# steps, while the best quadratic reaches about 7 (the noise we added has variance 9, so no curve
# can do much better), and the last panel's curve misses the left half of the data. The Hessian
# explains that too. Its smallest eigenvalue is tiny next to its largest: the condition number of
# the design $[t^2, t, 1]$ is huge, because $t^2$ runs up to 361 while the constant column is 1. Along the flat direction (almost pure $c$,
# the constant term) each step removes only a fraction $\text{lr}\cdot\lambda_{\min}$ of the
# remaining distance, and the learning rate cannot rise to compensate, because the steep direction
# caps it at $2/\lambda_{\max}$:

# %%
lam_q = torch.linalg.eigvalsh(hessian_q)
print(f"λ_min = {lam_q[0].item():.2g}, λ_max = {lam_q[-1].item():.2g}, condition number {(lam_q[-1] / lam_q[0]).item():.2g}")
print(f"steps at lr 1e-5 to shrink the flat direction's error by a factor e: {1 / (1e-5 * lam_q[0].item()):.2g}")
t_norm = (time_s - time_s.mean()) / time_s.std()        # centred and scaled time
design_norm = torch.stack([t_norm ** 2, t_norm, torch.ones(20)], dim=1).double()
lam_norm = torch.linalg.eigvalsh((2 / len(time_s)) * design_norm.T @ design_norm)
print(f"with normalized t the condition number is {(lam_norm[-1] / lam_norm[0]).item():.2g}")
print("normalizing t improves the conditioning over 10,000-fold:",
      (lam_q[-1] / lam_q[0]).item() > 1e4 * (lam_norm[-1] / lam_norm[0]).item())

# %% [markdown]
# Hundreds of thousands of steps per factor of $e$: that is the stall. The fix is the one from
# section 3. Centring and scaling $t$ makes the three columns comparable, the condition number
# drops to single figures, and a larger learning rate becomes safe.
#
# ## 5. Autograd
#
# Deriving `grad_fn` by hand was fine for a line. For a network with millions of parameters it is
# not. PyTorch's **autograd** records every operation on tensors that require gradients, and
# `backward()` applies the chain rule to that record, from the loss back to the leaves.

# %%
params = torch.tensor([1.0, 0.0], requires_grad=True)
print("params.grad before any backward:", params.grad)
print("params.grad is None:", params.grad is None)

loss = loss_fn(model(t_u, *params), t_c)
loss.backward()
print("params.grad after backward:", [round(g, 1) for g in params.grad.tolist()])  # 1 decimal: float32 round-off stays below it

# %% [markdown]
# Autograd and our hand-derived `grad_fn` agree, on both inputs:

# %%
for name, inp in [("raw", t_u), ("scaled", t_un)]:
    p = torch.tensor([1.0, 0.0], requires_grad=True)
    loss_fn(model(inp, *p), t_c).backward()
    manual = grad_fn(inp, t_c, model(inp, w, b), w, b)
    print(f"{name}: manual == autograd (rtol 1e-5):", torch.allclose(manual, p.grad, rtol=1e-5))

# %% [markdown]
# **The recorded graph.** Each result tensor has a `grad_fn`, the backward function of the operation
# that produced it, and `grad_fn.next_functions` points to the backward functions of its inputs.
# Walking that chain shows the graph autograd will traverse. (We print only `.name()`: the objects'
# default representation contains memory addresses.)

# %%
def show_graph(fn, depth=0):
    """Print a grad_fn and, indented, everything it leads back to."""
    if fn is None:   # an input that needs no gradient (here t_u and t_c)
        return
    print("    " * depth + fn.name())
    for child, _ in fn.next_functions:
        show_graph(child, depth + 1)


loss = loss_fn(model(t_u, *params), t_c)
show_graph(loss.grad_fn)

# %% [markdown]
# Read it from the top: the mean, the square, the subtraction, the addition of `b`, the
# multiplication by `w`. `UnbindBackward0` is the `*params` unpacking, which splits `params` into
# `w` and `b`; the same node appears twice because both branches lead back to it. `AccumulateGrad`
# is the leaf: it adds whatever arrives into `params.grad`.
#
# **Gradients accumulate.** `backward()` *adds* to `.grad`; it does not overwrite it. That is the
# right behaviour when a tensor is used in several places (each use contributes a term, as in the
# sums above), but it means a training loop must reset the gradient itself.

# %%
params = torch.tensor([1.0, 0.0], requires_grad=True)
loss_fn(model(t_un, *params), t_c).backward()
once = params.grad.clone()
loss_fn(model(t_un, *params), t_c).backward()
print("after one backward: ", once.round(decimals=2).tolist())
print("after two backwards:", params.grad.round(decimals=2).tolist())
print("the second call added the same gradient again:", torch.allclose(params.grad, 2 * once))
if params.grad is not None:   # .grad is None before the first backward, so guard
    params.grad.zero_()
print("after zero_():      ", params.grad)

# %% [markdown]
# **Updating parameters.** An in-place update such as `params -= lr * params.grad` on a leaf that
# requires grad would itself be recorded, and PyTorch refuses:

# %%
try:
    params -= 1e-2 * params.grad
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# The fix is to switch recording off for the update with `torch.no_grad()`. (Older code, including
# fastai chapter 4, writes to `params.data` instead; `no_grad` says what it means and is safer.
# Older code also spells the update `p.data.add_(-lr, grad)`; that signature is gone, and today's
# is `p.add_(grad, alpha=-lr)`.) Here is the training loop with autograd: the same updates,
# without `grad_fn`.

# %%
def training_loop_autograd(n_epochs, learning_rate, params, t_u, t_c):
    """Gradient descent with autograd computing the gradient. Returns the final params and losses."""
    params = params.detach().clone().requires_grad_(True)
    losses = []
    for epoch in range(1, n_epochs + 1):
        if params.grad is not None:
            params.grad.zero_()
        loss = loss_fn(model(t_u, *params), t_c)
        loss.backward()
        with torch.no_grad():
            params -= learning_rate * params.grad
        losses.append(loss.item())
    return params.detach(), losses


params_ag, losses_ag = training_loop_autograd(5000, 1e-2, torch.tensor([1.0, 0.0]), t_un, t_c)
print("autograd loop reproduces Run C′ (allclose, atol 1e-4):", torch.allclose(params_ag, params_cp, atol=1e-4))

# %% [markdown]
# **Gradients of intermediate results.** Only leaves keep `.grad` by default. To inspect the gradient
# at an intermediate tensor, ask for it with `retain_grad()` before `backward()`. It should equal our
# hand-written `dloss_fn`, $2(t_p - t_c)/N$:

# %%
params = torch.tensor([1.0, 0.0], requires_grad=True)
t_p = model(t_un, *params)
t_p.retain_grad()
loss = loss_fn(t_p, t_c)
loss.backward()
print("dL/dt_p from autograd == dloss_fn:", torch.allclose(t_p.grad, dloss_fn(t_p.detach(), t_c)))

# %% [markdown]
# **The functional form.** `torch.autograd.grad(outputs, inputs)` returns the gradients instead of
# adding them into `.grad`, which leaves the parameters untouched:

# %%
params = torch.tensor([1.0, 0.0], requires_grad=True)
(g_functional,) = torch.autograd.grad(loss_fn(model(t_un, *params), t_c), params)
print("torch.autograd.grad:", g_functional.round(decimals=2).tolist(), "  params.grad is still None:", params.grad is None)

# %% [markdown]
# ### Outputs that are not scalars: `backward(gradient=v)`
#
# Every `backward()` so far started from a scalar loss. A function $y = f(x)$ from $n$ inputs to $m$
# outputs has an $m \times n$ matrix of derivatives, the **Jacobian** $J_{ij} = \partial y_i / \partial x_j$.
# Reverse mode never builds $J$. One backward pass takes a vector $v$ with one weight per output and
# returns $v^\top J$, the gradient of the scalar $\sum_i v_i y_i$: a **vector-Jacobian product**.
# With no $v$ there is nothing to start from, and torch says so:

# %%
def f_vec(x):
    """A function from R³ to R⁴."""
    return torch.stack([x[0] * x[1], torch.sin(x[2]) + x[0], x[1] ** 2 * x[2], x.sum()])


x_nv = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
y_nv = f_vec(x_nv)
try:
    y_nv.backward()
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# From scratch first. Central differences give the Jacobian one column at a time: nudge input $j$
# and watch all four outputs move. Then $v^\top J$ is a matrix product.

# %%
v_nv = torch.tensor([1.0, -2.0, 0.5, 2.0], dtype=torch.float64)
with torch.no_grad():
    columns = []
    for j in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[j] = 1e-6
        columns.append((f_vec(x_nv + step) - f_vec(x_nv - step)) / 2e-6)
    J_numeric = torch.stack(columns, dim=1)          # (4 outputs, 3 inputs)
print("J (central differences):\n", J_numeric.round(decimals=4))
print("vᵀJ from scratch:", (v_nv @ J_numeric).round(decimals=4).tolist())

# %% [markdown]
# Then the library, two ways: `backward(gradient=v)` leaves $v^\top J$ in `x.grad`, and
# `torch.autograd.functional.jacobian` builds the whole $J$ (with one backward pass per output).
# All three agree. The `gradient` argument also explains a trick used below: `y.sum().backward()`
# is `y.backward(gradient=torch.ones_like(y))`.

# %%
y_nv.backward(gradient=v_nv)
J_library = torch.autograd.functional.jacobian(f_vec, x_nv.detach())
print("backward(gradient=v):", x_nv.grad.round(decimals=4).tolist())
print("vᵀJ == backward(gradient=v):", torch.allclose(v_nv @ J_library, x_nv.grad))
print("central-difference J == autograd J (atol 1e-8):", torch.allclose(J_numeric, J_library, atol=1e-8))

# %% [markdown]
# **`retain_graph`.** A backward pass frees the graph's saved values as it goes, so a second
# `backward()` through the same graph fails. Pass `retain_graph=True` to keep it; the second pass
# then works and, like every backward pass, *adds* into the leaf's `.grad`:

# %%
x_nv.grad = None
y_nv = f_vec(x_nv)
y_nv.backward(gradient=v_nv)
try:
    y_nv.backward(gradient=v_nv)
except RuntimeError as err:
    print("RuntimeError:", str(err).split(".")[0] + ".")

x_nv.grad = None
y_nv = f_vec(x_nv)
y_nv.backward(gradient=v_nv, retain_graph=True)
once = x_nv.grad.clone()
y_nv.backward(gradient=v_nv)
print("with retain_graph=True the second pass runs, and x.grad doubles:", torch.allclose(x_nv.grad, 2 * once))

# %% [markdown]
# ## 6. Autograd from scratch
#
# Autograd is less magic than it looks. A scalar version fits in one class: each `Value` remembers
# its parents and the **local derivative** with respect to each, and `backward()` applies the chain
# rule in the right order. (This follows Weidman's `NumberWithGrad`, chapters 6 and 7, with the fix
# described below; Andrej Karpathy's *micrograd* is the same idea.)

# %%
class Value:
    """A scalar that remembers how it was computed, so that gradients can flow back to its inputs."""

    def __init__(self, data, parents=(), op=""):
        self.data = float(data)
        self.grad = 0.0
        self._parents = parents   # pairs (parent Value, d self / d parent)
        self._op = op

    def __repr__(self):
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    @staticmethod
    def lift(x):
        return x if isinstance(x, Value) else Value(x)

    def __add__(self, other):
        other = Value.lift(other)
        return Value(self.data + other.data, ((self, 1.0), (other, 1.0)), "+")

    def __mul__(self, other):
        other = Value.lift(other)
        return Value(self.data * other.data, ((self, other.data), (other, self.data)), "*")

    __radd__ = __add__
    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-Value.lift(other))

    def __rsub__(self, other):
        return Value.lift(other) + (-self)

    def __pow__(self, k):
        return Value(self.data ** k, ((self, k * self.data ** (k - 1)),), f"**{k}")

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, ((self, 1 - t * t),), "tanh")

    def backward(self):
        """Fill in .grad of every node this one depends on (adding, like torch)."""
        order, seen = [], set()

        def visit(node):            # depth-first: parents before the node itself
            if node not in seen:
                seen.add(node)
                for parent, _ in node._parents:
                    visit(parent)
                order.append(node)

        visit(self)
        self.grad = 1.0
        for node in reversed(order):  # every consumer of a node is done before the node sends its grad on
            for parent, local in node._parents:
                parent.grad += local * node.grad


# %% [markdown]
# Two details carry the whole algorithm.
#
# - **Topological order.** A node may only pass its gradient back once it has received *all* of its
#   own gradient, from every node that used it. Listing the nodes depth-first (parents first) and
#   walking the list backwards guarantees that.
# - **`+=`, not `=`.** A node used twice receives two contributions, and the chain rule says to add
#   them (that is the "sum" side of the sum/broadcast pair from section 2).
#
# Weidman's example: $a = 3$, $d = (4a + 3)(a + 2)$. Then $d = 15 \cdot 5 = 75$ and
# $dd/da = 4(a + 2) + (4a + 3) = 8a + 11 = 35$. Note that `a` is used twice.

# %%
a = Value(3.0)
d = (4 * a + 3) * (a + 2)
d.backward()
print("d =", d.data, "   dd/da =", a.grad)
print("Value gives 75 and 35:", d.data == 75.0 and a.grad == 35.0)

# %% [markdown]
# The same expression in PyTorch, on a 2 × 2 tensor of threes. `backward()` needs a scalar to start
# from, so we sum first; the sum's backward broadcasts a 1 to every element, and each element gets
# its own 35:

# %%
a_t = torch.full((2, 2), 3.0, requires_grad=True)
d_t = (4 * a_t + 3) * (a_t + 2)
d_t.sum().backward()
print(a_t.grad)
print("torch gives 35 everywhere:", bool((a_t.grad == 35).all()))

# %% [markdown]
# ### Python control flow: the graph is recorded as the code runs
#
# Neither `Value` nor torch sees your source code. They record the operations that actually run,
# which is why this style is called **define-by-run**. A function may contain loops and `if`s
# that depend on the data: each call records only the branch taken and as many loop turns as ran,
# so each input gets its own graph, and `backward()` differentiates the path that was taken.
#
# Newton's method for $\sqrt{a}$ repeats $x \leftarrow (x + a/x)/2$ until $x^2$ is within $10^{-12}$
# of $a$. How many turns that takes depends on $a$, and the starting guess depends on an `if`. The
# one function below runs on our `Value` (from scratch) and on torch tensors (the library),
# because it uses only `+`, `*` and `**`; `number` reads the plain float out of either, for the tests.

# %%
def number(v):
    """The plain float inside a Value, a 0-d tensor or a float (read, never differentiated)."""
    if isinstance(v, Value):
        return v.data
    return v.detach().item() if isinstance(v, torch.Tensor) else float(v)


def newton_sqrt(a):
    """√a by Newton's method; returns the root and the number of loop turns taken."""
    x = a * 0.5 if number(a) > 1 else 1.0      # the starting guess depends on the data
    turns = 0
    while abs(number(x) ** 2 - number(a)) > 1e-12 * number(a):   # so does the number of turns
        x = (x + a * x ** -1) * 0.5
        turns += 1
    return x, turns


def graph_size(tensor):
    """How many backward nodes torch recorded for `tensor`."""
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo.extend(child for child, _ in fn.next_functions)
    return len(seen)


for a_value in [2.0, 10000.0]:
    a_scratch = Value(a_value)
    root_scratch, turns = newton_sqrt(a_scratch)
    root_scratch.backward()
    a_torch = torch.tensor(a_value, dtype=torch.float64, requires_grad=True)
    root_torch, _ = newton_sqrt(a_torch)
    root_torch.backward()
    exact = 1 / (2 * math.sqrt(a_value))
    print(f"a = {a_value:7g}: {turns:2d} loop turns, torch recorded {graph_size(root_torch):3d} nodes;  "
          f"d√a/da = 1/(2√a): Value {math.isclose(a_scratch.grad, exact, rel_tol=1e-9)}, "
          f"torch {math.isclose(a_torch.grad.item(), exact, rel_tol=1e-9)}")

# %% [markdown]
# Two inputs, two different graphs, one correct derivative each. Autograd differentiates the
# computation that ran, the unrolled loop, not the mathematical function you had in mind. Here the
# two agree because Newton's iteration converges, and its derivative converges with it. With a
# loop that stops early, or an `if` that picks a different formula on each side of a point, the
# gradient is that of the branch actually taken, and says nothing about the other one.

# %% [markdown]
# **Why topological order, and not simple recursion?** Weidman's `NumberWithGrad` sends each
# gradient contribution back recursively, the moment it arrives. That gives the right answer (all
# contributions still get added), but it walks every *path* through the graph, not every node, and a
# shared sub-expression is re-walked once per path. Paths can multiply exponentially. Here is a graph
# where each layer uses the previous one twice:

# %%
def naive_backward(node, grad, counter):
    """Weidman-style: push each contribution all the way back, recursively."""
    counter[0] += 1
    node.grad += grad
    for parent, local in node._parents:
        naive_backward(parent, local * grad, counter)


def layered(x, n_layers):
    y = x
    for _ in range(n_layers):
        y = (y + y.tanh()) * 0.5    # y is used twice per layer
    return y


x_naive, x_topo = Value(0.3), Value(0.3)
calls = [0]
naive_backward(layered(x_naive, 14), 1.0, calls)
out = layered(x_topo, 14)
out.backward()


def count_nodes(node, seen=None):
    seen = set() if seen is None else seen
    if node not in seen:
        seen.add(node)
        for parent, _ in node._parents:
            count_nodes(parent, seen)
    return len(seen)


print(f"naive recursion: {calls[0]} visits;  topological order: {count_nodes(out)} nodes, each visited once")
print("same gradient:", math.isclose(x_naive.grad, x_topo.grad, rel_tol=1e-12))

# %% [markdown]
# **Calling `backward()` twice.** Torch accumulates on leaves, so with the graph retained a second
# pass adds a second 35 and `a.grad` becomes 70. Our `Value` does something worse. Its `backward`
# adds into the `.grad` of *every* node, intermediates included, and those keep their gradients from
# the first pass. The second pass starts from these stale values and re-propagates them, so the
# error compounds along the graph:

# %%
a = Value(3.0)
d = (4 * a + 3) * (a + 2)
d.backward()
d.backward()
a_t = torch.tensor(3.0, requires_grad=True)
d_t = (4 * a_t + 3) * (a_t + 2)
d_t.backward(retain_graph=True)
d_t.backward()
print("Value after two backward():", a.grad, "   torch with retain_graph:", a_t.grad.item())
print("Value gives 125, torch 70 = 35 + 35:", a.grad == 125.0 and a_t.grad.item() == 70.0)

# %% [markdown]
# Where 125 comes from: after the first pass $a$ holds 35, the nodes $4a$ and $4a + 3$ hold 5 each
# and $a + 2$ holds 15. The second pass adds 5 and 15 again, so $4a + 3$ holds 10 and $a + 2$ holds
# 30. Then $4a$ receives 10 on top of its stale 5 and sends $4 \cdot 15 = 60$ to $a$, and $a + 2$ sends
# 30: $a$ ends at $35 + 60 + 30 = 125$.
# Torch avoids this because intermediate tensors keep no `.grad` (unless you ask with
# `retain_grad()`): each pass starts fresh, and only the leaves accumulate. For our class the
# cure is to reset every node before a new pass; in Exercise 02.8 you add that `zero_grad()`.
#
# ## 7. A backward pass from scratch
#
# Now a real (small) network, following fastai chapter 17: 200 examples with 100 features, one hidden
# layer of 50 ReLU units, one output, and the mean squared error. We do the forward and backward
# passes by hand, store each gradient in a `.g` attribute, and compare with autograd. Everything is
# float64, so the comparison can be tight.

# %%
gen = torch.Generator().manual_seed(2)
x = torch.randn(200, 100, generator=gen, dtype=torch.float64)
y = torch.randn(200, generator=gen, dtype=torch.float64)
w1 = torch.randn(100, 50, generator=gen, dtype=torch.float64) * math.sqrt(2 / 100)  # Kaiming-style scale
b1 = torch.zeros(50, dtype=torch.float64)
w2 = torch.randn(50, 1, generator=gen, dtype=torch.float64) * math.sqrt(2 / 50)
b2 = torch.zeros(1, dtype=torch.float64)


def lin(x, w, b):
    return x @ w + b


def relu(x):
    return x.clamp_min(0.0)


def mse_out(output, targ):
    return (output.squeeze(-1) - targ).pow(2).mean()   # squeeze(-1): (N, 1) -> (N,), never (1, 1) -> ()


# %% [markdown]
# The backward functions mirror the forward ones, each receiving the gradient of the loss with
# respect to its output (`out.g`) and writing the gradient with respect to its inputs:
#
# - MSE: $\partial L/\partial \text{out} = 2(\text{out} - y)/N$, reshaped back to (N, 1);
# - ReLU: pass the gradient where the input was positive, block it elsewhere;
# - linear layer $\text{out} = x W + b$: $\partial L/\partial x = \text{out.g}\, W^\top$,
#   $\partial L/\partial W = x^\top \text{out.g}$, and $\partial L/\partial b$ = out.g summed over the
#   batch (the bias was broadcast over the rows, so its gradient is a sum).

# %%
def mse_grad(inp, targ):
    inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]


def relu_grad(inp, out):
    inp.g = (inp > 0).to(inp.dtype) * out.g


def lin_grad(inp, out, w, b):
    inp.g = out.g @ w.t()
    w.g = inp.t() @ out.g
    b.g = out.g.sum(0)


def forward_and_backward(inp, targ, w1, b1, w2, b2):
    # forward, keeping every intermediate
    l1 = lin(inp, w1, b1)
    l2 = relu(l1)
    out = lin(l2, w2, b2)
    loss = mse_out(out, targ)
    # backward, in reverse order
    mse_grad(out, targ)
    lin_grad(l2, out, w2, b2)
    relu_grad(l1, l2)
    lin_grad(inp, l1, w1, b1)
    return loss


loss_scratch = forward_and_backward(x, y, w1, b1, w2, b2)
grads_scratch = {name: t.g.clone() for name, t in [("x", x), ("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)]}
print(f"loss {loss_scratch.item():.3f}")

# %%
leaves = {name: t.clone().requires_grad_(True) for name, t in [("x", x), ("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)]}
loss_auto = mse_out(lin(relu(lin(leaves["x"], leaves["w1"], leaves["b1"])), leaves["w2"], leaves["b2"]), y)
loss_auto.backward()
for name in leaves:
    print(f"{name:3s} shape {str(tuple(leaves[name].shape)):10s} from scratch == autograd (atol 1e-8):",
          torch.allclose(grads_scratch[name], leaves[name].grad, rtol=0, atol=1e-8))

# %% [markdown]
# **Refactoring into layers.** The pattern "remember the inputs in the forward pass, use them in the
# backward pass" is what a layer class is for. Each layer's `__call__` stores its input and output;
# its `backward` reads them back. The model calls the layers in order and their backwards in
# reverse. This is, in miniature, how `torch.nn` is organised.

# %%
class Lin:
    def __init__(self, w, b):
        self.w, self.b = w, b

    def __call__(self, inp):
        self.inp = inp
        self.out = inp @ self.w + self.b
        return self.out

    def backward(self):
        self.inp.g = self.out.g @ self.w.t()
        self.w.g = self.inp.t() @ self.out.g
        self.b.g = self.out.g.sum(0)


class Relu:
    def __call__(self, inp):
        self.inp = inp
        self.out = inp.clamp_min(0.0)
        return self.out

    def backward(self):
        self.inp.g = (self.inp > 0).to(self.inp.dtype) * self.out.g


class Mse:
    def __call__(self, inp, targ):
        self.inp, self.targ = inp, targ
        self.out = (inp.squeeze(-1) - targ).pow(2).mean()
        return self.out

    def backward(self):
        self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.targ.shape[0]


class Model:
    def __init__(self, w1, b1, w2, b2):
        self.layers = [Lin(w1, b1), Relu(), Lin(w2, b2)]
        self.loss = Mse()

    def __call__(self, x, targ):
        for layer in self.layers:
            x = layer(x)
        return self.loss(x, targ)

    def backward(self):
        self.loss.backward()
        for layer in reversed(self.layers):
            layer.backward()


net = Model(w1, b1, w2, b2)
loss_layers = net(x, y)
net.backward()
print("class refactor gives identical grads:",
      all(torch.equal(grads_scratch[name], t.g) for name, t in [("x", x), ("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)]))

# %% [markdown]
# **The library version: `torch.autograd.Function`.** When you need an operation autograd does not
# know, or a backward that is cheaper or more stable than the automatic one, you write a `Function`
# with two static methods. `forward` computes the result and saves what `backward` will need with
# `ctx.save_for_backward`; `backward` receives the gradient with respect to the output and returns
# the gradient with respect to each input.

# %%
class MyRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inp):
        ctx.save_for_backward(inp)
        return inp.clamp_min(0.0)

    @staticmethod
    def backward(ctx, grad_output):
        (inp,) = ctx.saved_tensors
        return grad_output * (inp > 0).to(grad_output.dtype)


leaves2 = {name: t.clone().requires_grad_(True) for name, t in [("x", x), ("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)]}
mse_out(lin(MyRelu.apply(lin(leaves2["x"], leaves2["w1"], leaves2["b1"])), leaves2["w2"], leaves2["b2"]), y).backward()
print("MyRelu in the network gives the same grads:", all(torch.allclose(leaves2[n].grad, grads_scratch[n], rtol=0, atol=1e-8) for n in leaves2))

# %% [markdown]
# `torch.autograd.gradcheck` automates the perturbation test from section 2: it compares the
# backward with central differences for every input element. It needs float64 (float32 round-off
# would swamp the comparison), and the inputs must stay away from the ReLU's kink at 0, where a
# perturbation of size `eps` would cross over and the numerical slope would be meaningless.

# %%
gen = torch.Generator().manual_seed(3)
x_check = torch.randn(20, generator=gen, dtype=torch.float64)
x_check = (x_check.sign() * (x_check.abs() + 1e-3)).requires_grad_(True)   # at least 1e-3 from 0
print("smallest |input|:", f"{x_check.abs().min().item():.4f}")
print("gradcheck(MyRelu):", torch.autograd.gradcheck(MyRelu.apply, (x_check,), eps=1e-6, atol=1e-8))

# %% [markdown]
# *Optional.* PyTorch also has a functional interface, `torch.func`, in the style of JAX:
# `torch.func.grad(f)` returns a new function that computes the gradient of `f`. It composes
# (gradients of gradients, vectorised per-example gradients with `vmap`) without touching `.grad`.

# %%
def loss_of_params(p):
    return loss_fn(model(t_un, p[0], p[1]), t_c)


grad_of_loss = torch.func.grad(loss_of_params)
print("torch.func.grad == grad_fn:", torch.allclose(grad_of_loss(torch.tensor([1.0, 0.0])), grad_fn(t_un, t_c, model(t_un, w, b), w, b)))

# %% [markdown]
# ## 8. Optimizers
#
# Our update rule is the simplest one there is. `torch.optim` holds many better ones, all with the
# same contract: give the optimizer references to the parameters when you create it, then in the
# loop call `zero_grad()`, compute the loss, call `backward()`, and call `step()`.

# %%
print([name for name in dir(torch.optim) if name[0].isupper() and name != "Optimizer"])

# %% [markdown]
# One modern detail: `zero_grad()` sets the gradients to `None` by default rather than filling them
# with zeros (it saves memory and a kernel launch). Code that calls `p.grad.zero_()` right after
# `optimizer.zero_grad()` therefore crashes.

# %%
params = torch.tensor([1.0, 0.0], requires_grad=True)
optimizer = torch.optim.SGD([params], lr=1e-2)
loss_fn(model(t_un, *params), t_c).backward()
print("grad after backward:  ", params.grad.round(decimals=2).tolist())
optimizer.zero_grad()
print("grad after zero_grad():", params.grad)

# %% [markdown]
# `optim.SGD` with learning rate 1e-2 is exactly our hand-written update, so it should reproduce
# Run C′:

# %%
def training_loop_optim(n_epochs, optimizer, params, t_u, t_c):
    """Train with any torch.optim optimizer that holds `params`. Returns the final params and losses."""
    losses = []
    for epoch in range(1, n_epochs + 1):
        optimizer.zero_grad()
        loss = loss_fn(model(t_u, *params), t_c)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return params.detach(), losses


params = torch.tensor([1.0, 0.0], requires_grad=True)
params_sgd, losses_sgd = training_loop_optim(5000, torch.optim.SGD([params], lr=1e-2), params, t_un, t_c)
print("optim.SGD reproduces Run C′ (allclose, atol 1e-4):", torch.allclose(params_sgd, params_cp, atol=1e-4))

# %% [markdown]
# **Adam on the raw input.** Adam keeps a running average of each parameter's gradient and of its
# square, and divides one by the square root of the other. Each parameter's step therefore comes out
# at roughly the learning rate in size, whatever the scale of its gradient. That is an automatic,
# per-parameter version of what we did by scaling the input, so Adam copes with the badly scaled raw
# input that defeated plain gradient descent. (It copes; it does not ignore the scale completely:
# its small ε and the bias correction of its averages still see it.)

# %% tags=["nbval-ignore-output"]
params = torch.tensor([1.0, 0.0], requires_grad=True)
params_adam, losses_adam = training_loop_optim(2000, torch.optim.Adam([params], lr=1e-1), params, t_u, t_c)
final_adam = loss_fn(model(t_u, *params_adam), t_c).item()
final_cp = loss_fn(model(t_un, *params_cp), t_c).item()
print(f"Adam on raw t_u: w = {params_adam[0].item():.4g}, b = {params_adam[1].item():.4g}, loss {final_adam:.4g}")
print(f"Run C′ (scaled): w = {params_cp[0].item():.4g}, b = {params_cp[1].item():.4g}, loss {final_cp:.4g}")

# %%
# sweep: Adam final loss relative to Run C' 0..0 over 6 runs; claim < 0.01
print("final loss within 1% of Run C′:", abs(final_adam - final_cp) < 0.01 * final_cp)
# sweep: Adam 10w relative to Run C' w 2.865e-05..2.865e-05 over 6 runs; claim < 0.02
print("10·w within 2% of Run C′'s w:", abs(10 * params_adam[0].item() - params_cp[0].item()) < 0.02 * abs(params_cp[0].item()))
# sweep: Adam b relative to Run C' b 5.027e-05..5.027e-05 over 6 runs; claim < 0.02
print("b within 2% of Run C′'s b:", abs(params_adam[1].item() - params_cp[1].item()) < 0.02 * abs(params_cp[1].item()))

# %% [markdown]
# Adam found the same line: its $w$ is ten times smaller because it multiplies $t_u$ instead of
# $0.1\,t_u$, and its $b$ is the same.
#
# A note on the name: *stochastic* gradient descent means that each step uses a random minibatch of
# the data, so each gradient is a noisy estimate. Here every step uses all 11 points, so `optim.SGD`
# is doing plain (full-batch) gradient descent. Minibatches arrive in chapter 03.
#
# ### Explore: learning rate, scaling and optimizer
#
# The explorer below reruns the thermometer fit with the settings you choose and shows the loss
# curve and the path over the loss contours, with a one-line verdict. Things to try: raise the
# learning rate on the scaled input until it diverges, and compare the point where it happens with
# the printed critical value; switch to the raw input and look for a learning rate that converges in
# 5000 epochs (can you find one?); then try momentum, whose limit is 1.9 times higher, and Adam,
# which is happy on both inputs across a wide range of learning rates. First, its default settings:

# %% tags=["nbval-ignore-output"]
_ = draw_gd_explorer(t_u, t_c, lr=1e-2, scale=0.1, optimizer="SGD", epochs=5000)

# %% [markdown]
# Now yours to play with: move any control, or press **draw**, to rerun with the settings shown.

# %% tags=["nbval-ignore-output"]
gd_explorer(t_u, t_c)

# %% [markdown]
# ## 9. Validation, overfitting and autograd hygiene
#
# A low training loss says the model fits the points it was trained on. Whether it will be right
# about *new* readings is a separate question, and the only honest way to answer it is to hold some
# data back and never train on it. With 11 points we keep 20% (2 points) for validation, chosen by a
# seeded random permutation. The indices are printed, so a change of seed is visible.

# %%
n_samples = t_u.shape[0]
n_val = int(0.2 * n_samples)
shuffled_indices = torch.randperm(n_samples, generator=torch.Generator().manual_seed(42))
train_indices = shuffled_indices[:-n_val]
val_indices = shuffled_indices[-n_val:]
print("train indices:", train_indices.tolist())
print("val indices:  ", val_indices.tolist())
print("sizes 9/2:", (len(train_indices), len(val_indices)) == (9, 2))

train_t_un, val_t_un = t_un[train_indices], t_un[val_indices]
train_t_c, val_t_c = t_c[train_indices], t_c[val_indices]

# %% [markdown]
# The training loop now evaluates both losses every epoch, but only the training loss goes into
# `backward()`. The validation loss is computed under `torch.no_grad()`: we never differentiate it,
# so there is no reason to record a graph for it, and if we did, a careless `backward()` on a sum of
# the two losses would quietly train on the validation data.

# %% tags=["nbval-ignore-output"]
def training_loop_val(n_epochs, optimizer, params, train_t_u, val_t_u, train_t_c, val_t_c, print_at=()):
    history = {"train": [], "val": []}
    for epoch in range(1, n_epochs + 1):
        train_loss = loss_fn(model(train_t_u, *params), train_t_c)
        with torch.no_grad():
            val_loss = loss_fn(model(val_t_u, *params), val_t_c)
        assert val_loss.requires_grad is False
        optimizer.zero_grad()
        train_loss.backward()
        optimizer.step()
        history["train"].append(train_loss.item())
        history["val"].append(val_loss.item())
        if epoch in print_at:
            print(f"epoch {epoch:5d}   train loss {train_loss.item():8.4g}   val loss {val_loss.item():8.4g}")
    return params.detach(), history, val_loss


params = torch.tensor([1.0, 0.0], requires_grad=True)
split_params, split_history, val_loss = training_loop_val(
    3000, torch.optim.SGD([params], lr=1e-2), params, train_t_un, val_t_un, train_t_c, val_t_c,
    print_at=(1, 2, 3, 500, 1000, 2000, 3000))
print(f"w = {split_params[0].item():.4g}, b = {split_params[1].item():.4g}")

# %%
print("val_loss.requires_grad is False:", val_loss.requires_grad is False)
# sweep: split run train loss epoch 3000 / epoch 1 0.03129..0.03816 over 6 runs; claim < 0.5
print("train loss at epoch 3000 below half of epoch 1's:", split_history["train"][-1] < 0.5 * split_history["train"][0])

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.semilogy(range(1, 3001), split_history["train"], label="train (9 points)")
ax.semilogy(range(1, 3001), split_history["val"], label="validation (2 points)")
ax.set(xlabel="epoch", ylabel="loss", title="Training and validation loss")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Switching recording on and off.** `torch.set_grad_enabled(flag)` is `no_grad` with a switch, handy
# when one function serves both phases. And `detach()` returns a tensor that shares the data but
# has left the graph: use it when you want to keep or plot a value without keeping everything that
# produced it alive.

# %%
def calc_forward(t_u, t_c, is_train):
    with torch.set_grad_enabled(is_train):
        return loss_fn(model(t_u, *params), t_c)


print("training phase,   loss.requires_grad:", calc_forward(train_t_un, train_t_c, True).requires_grad)
print("validation phase, loss.requires_grad:", calc_forward(val_t_un, val_t_c, False).requires_grad)
kept = calc_forward(train_t_un, train_t_c, True).detach()
print("a detached loss has no grad_fn:  ", kept.grad_fn is None, "  requires_grad:", kept.requires_grad)

# %% [markdown]
# **Reading the curves.** Two rules of thumb (*Deep Learning with PyTorch*, section 5.5.3):
#
# 1. If the **training** loss does not fall, the model is too simple for the data, or the data do
#    not contain the information needed to predict the target.
# 2. If the training and validation losses **diverge** (training keeps falling, validation stalls or
#    rises), the model is **overfitting**: it is learning the particular training points, noise
#    included, rather than the pattern.
#
# The four typical pictures (after *Deep Learning with PyTorch*, figure 5.14):

# %%
ep = np.linspace(0, 1, 200)
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), sharey=True)
scenarios = [
    ("A: training loss\ndoes not fall", 1.0 - 0.05 * ep, 1.05 - 0.04 * ep),
    ("B: overfitting\n(validation turns up)", 0.15 + 0.85 * np.exp(-5 * ep), 0.45 + 0.55 * np.exp(-6 * ep) + 0.5 * ep ** 2),
    ("C: both fall together:\nroom to grow the model", 0.1 + 0.9 * np.exp(-4 * ep), 0.15 + 0.9 * np.exp(-4 * ep)),
    ("D: a gap, same trend:\noverfitting under control", 0.1 + 0.9 * np.exp(-4 * ep), 0.35 + 0.75 * np.exp(-3 * ep)),
]
for ax, (title, train_curve, val_curve) in zip(axes, scenarios):
    ax.plot(ep, train_curve, label="train")
    ax.plot(ep, val_curve, "--", label="validation")
    ax.set_title(title, fontsize=10)
    ax.set(xlabel="epochs", xticks=[], yticks=[])
axes[0].set_ylabel("loss")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read them with the two rules. In A the training loss hardly falls: rule 1, the model cannot fit
# the data. In B the validation loss turns up while the training loss keeps falling: rule 2,
# overfitting. C is not "the ideal" it may look like: training and validation agree so closely that
# the model has not reached the point where it starts to overfit, so it has capacity to spare, and a
# bigger model would probably fit better. D is the usual good outcome: validation sits above
# training, but the two follow the same trend, so the overfitting is under control.
#
# The working recipe follows: first **grow** the model until it fits the training data (rule 1 no
# longer applies, and you have left C behind), then **shrink or regularize** it until it stops
# overfitting (from B back to D). Our line has two parameters and nothing to overfit with: it sits in
# C. Exercise 02.7 tries a model with one more parameter, and chapter 03 continues with real
# networks, minibatches and `torch.nn`.
#
# ## Summary
#
# - Learning is estimation: a **model** with parameters, a **loss** that scores it on data, the
#   **gradient** of the loss with respect to the parameters, and an **update** that steps against it.
#   The loop is the same for 2 parameters and for 2 billion.
# - Derivatives three ways, and they agree: **central differences** (accurate to about $\delta^2$,
#   limited by round-off; do checks in float64), the **chain rule** by hand (forward pass stores
#   values, backward pass multiplies local derivatives), and **autograd**.
# - In a graph, a **sum** in the forward pass is a **broadcast** in the backward pass, and vice versa.
#   A node used twice receives the **sum** of both contributions.
# - Gradient descent on a quadratic loss converges only for **lr < 2/λ_max**, and crawls when the
#   condition number $\lambda_{\max}/\lambda_{\min}$ is large. Badly scaled inputs cause both;
#   **normalizing** the input fixes both.
# - `torch.autograd`: `requires_grad=True` on leaves, `loss.backward()` fills `.grad`, gradients
#   **accumulate** (zero them every step; the optimizer's `zero_grad()` sets them to `None`),
#   update parameters inside **`torch.no_grad()`**, use `retain_grad()` for intermediate tensors,
#   `torch.autograd.grad` for a functional answer, and a **`torch.autograd.Function`** (checked with
#   `gradcheck` in float64) for your own backward.
# - A backward pass from a vector output needs a vector: `y.backward(gradient=v)` computes the
#   **vector-Jacobian product** $v^\top J$ without building $J$; `retain_graph=True` keeps the graph
#   for another pass, which again adds into `.grad`.
# - Under the hood, backpropagation is a walk over the graph in reverse **topological order**;
#   a scalar version fits in one small class. The graph is recorded **as the code runs**, so loops
#   and `if`s that depend on the data are differentiated along the path actually taken.
# - `torch.optim` separates the update rule from the loop. **Adam** adapts the step size per
#   parameter and copes with the raw, badly scaled input.
# - Hold out **validation** data, call `backward()` on the training loss only, compute the validation
#   loss under `no_grad`, and read the two curves with the two rules.
#
# ## Exercises
#
# Each exercise ends with a `check(...)` cell that prints ✅ or ❌ with a hint. The checks test
# your code on their own hidden inputs, so an answer that only works on the examples above will not
# pass. Difficulty runs from 1 (a few lines) to 3 (a small project).

# %% [markdown]
# ### Exercise 02.1 · A numerical gradient (difficulty 1, about 10 minutes)
#
# Section 2's `deriv` handles a function of one number. A loss is a function of many. Write
# `numerical_grad(f, x, delta=1e-5)`: `f` takes a NumPy array `x` of any shape and returns one
# number, and `numerical_grad` returns the array of its partial derivatives $\partial f/\partial x_i$,
# shaped like `x`, each estimated by a central difference that moves that one element. It must
# leave `x` as it found it. (This is the gradient check that `gradcheck` automates in section 7.)
# The check compares with exact gradients of four hidden functions on arrays of shape (6,) and
# (2, 3), with your default `delta` and with `delta=1e-3`.

# %%
def numerical_grad(f, x, delta=1e-5):
    # BEGIN SOLUTION
    grad = np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        bump = np.zeros(x.shape)
        bump[index] = delta
        grad[index] = (f(x + bump) - f(x - bump)) / (2 * delta)
    return grad
    # END SOLUTION


# %%
check("02.1", numerical_grad)

# %% [markdown]
# ### Exercise 02.2 · A chain of any length (difficulty 2, about 15 minutes)
#
# Write `chain_deriv(chain, x)`: `chain` is a list of elementwise functions, applied first to last
# (so `[f1, f2, f3]` means $f_3(f_2(f_1(x)))$), of any length from one link up, and `x` is a NumPy
# array. Return the derivative of the whole chain at `x` by the chain rule, link by link: a forward
# pass that keeps the value flowing into each link, then each link's derivative, taken numerically
# with section 2's `deriv` at its own input, multiplied together. The check runs five hidden chains
# of one to five links, and watches where each link is evaluated, so a numerical derivative of the
# whole composition does not pass.

# %%
def chain_deriv(chain, x):
    # BEGIN SOLUTION
    inputs = []
    value = x
    for link in chain:
        inputs.append(value)          # forward: what flows into this link
        value = link(value)
    slopes = [deriv(link, u) for link, u in zip(chain, inputs)]
    return np.prod(slopes, axis=0)
    # END SOLUTION


# %%
check("02.2", chain_deriv)

# %% [markdown]
# ### Exercise 02.3 · The gradient of a quadratic model (difficulty 1, about 10 minutes)
#
# Section 3 derived the gradient of the MSE for the line $w\,t + b$. Do the same for the model
# $t_p = w_2 t^2 + w_1 t + b$ (the one Exercise 02.7 trains): write
# `grad_quad(t, t_c, t_p, w2, w1, b)`, returning $[\partial L/\partial w_2, \partial L/\partial w_1,
# \partial L/\partial b]$ as a tensor of shape (3,). The parameters are 0-d tensors and `t_p` holds
# the model's predictions. Derive it on paper first; the check compares with `torch.autograd.grad`
# on five hidden datasets of different sizes.

# %%
def grad_quad(t, t_c, t_p, w2, w1, b):
    # BEGIN SOLUTION
    slope = 2 * (t_p - t_c) / len(t)           # dL/dt_p, one per point
    how_t_p_moves = [t * t, t, torch.ones_like(t)]   # dt_p/dw2, dt_p/dw1, dt_p/db
    return torch.stack([(slope * d).sum() for d in how_t_p_moves])
    # END SOLUTION


# %%
check("02.3", grad_quad)

# %% [markdown]
# ### Exercise 02.4 · Predict the output (difficulty 1, about 10 minutes)
#
# Predict each value *before* you run anything, then write code that confirms your predictions.
# Throughout, `x = torch.tensor(3.0, requires_grad=True)`.
#
# - (a) Twice: compute a fresh `y = x ** 2` and call `y.backward()`. What is `x.grad` now (a number)?
# - (b) A parameter has a gradient; you call `opt.zero_grad()` on an optimizer that holds it. What is
#   its `.grad` right after that?
# - (c) Three predictions, as a tuple of booleans: the `requires_grad` of `(x * 2).detach()`, of
#   `x.detach() * 2`, and of `(x * 2).detach().requires_grad_()`.
# - (d) Three predictions: inside `with torch.no_grad():` you compute `y = x * 2`. What is
#   `y.requires_grad` inside the block, `x.requires_grad` inside the block, and, after the block,
#   `(y * x).requires_grad`?

# %%
grad_after_two_backwards = ...  # (a) your prediction
grad_after_zero_grad = ...      # (b)
detach_answers = ...            # (c) a tuple of three booleans
no_grad_answers = ...           # (d) a tuple of three booleans
# BEGIN SOLUTION
x = torch.tensor(3.0, requires_grad=True)
for _ in range(2):
    y = x ** 2
    y.backward()
grad_after_two_backwards = x.grad.item()     # 6 + 6: backward adds into .grad

p = torch.ones(3, requires_grad=True)
opt = torch.optim.SGD([p], lr=0.1)
(p ** 2).sum().backward()
opt.zero_grad()
grad_after_zero_grad = p.grad                # None: zero_grad() sets grads to None by default

x = torch.tensor(3.0, requires_grad=True)
detach_answers = ((x * 2).detach().requires_grad,             # detached: out of the graph
                  (x.detach() * 2).requires_grad,             # computed from a detached tensor only
                  (x * 2).detach().requires_grad_().requires_grad)  # a new leaf that asks for gradients
with torch.no_grad():
    y = x * 2
    inside = (y.requires_grad, x.requires_grad)               # new results: no; the leaf keeps its flag
no_grad_answers = (*inside, (y * x).requires_grad)            # after the block x brings tracking back
# END SOLUTION

# %%
check("02.4", grad_after_two_backwards, grad_after_zero_grad, detach_answers, no_grad_answers)

# %% [markdown]
# ### Exercise 02.5 · Debug this: keep the best epoch (difficulty 2, about 20 minutes)
#
# The function below trains the line with `torch.optim.SGD` and is meant to return the parameters of
# the epoch with the lowest validation loss (a simple form of early stopping), together with the
# history of validation losses, one number per epoch. Each epoch makes one step, then measures the
# validation loss of the updated parameters. The function has three bugs. Find them (run it on
# section 9's split and look at what comes back), then write a fixed `fit_best(...)` with the same
# signature that returns `best_params, history`. It must not change any tensor passed in. The check
# runs it on hidden data whose validation loss falls and then rises, compares with a correct loop,
# and watches whether your validation pass records a graph.

# %%
def buggy_fit_best(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
    params = params.detach().clone().requires_grad_(True)
    optimizer = torch.optim.SGD([params], lr=learning_rate)
    history, best_loss, best_params = [], float("inf"), None
    for epoch in range(n_epochs):
        train_loss = loss_fn(model(train_u, *params), train_c)
        train_loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        val_loss = loss_fn(model(val_u, *params), val_c)
        history.append(val_loss)
        if val_loss < best_loss:
            best_loss, best_params = val_loss, params
    return best_params, history


# %%
def fit_best(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
    # BEGIN SOLUTION
    params = params.detach().clone().requires_grad_(True)
    optimizer = torch.optim.SGD([params], lr=learning_rate)
    history, best_loss, best_params = [], float("inf"), None
    for epoch in range(n_epochs):
        optimizer.zero_grad()                           # bug 1: clear the old gradient before backward,
        loss_fn(model(train_u, *params), train_c).backward()
        optimizer.step()                                # ...not between backward and step
        with torch.no_grad():                           # bug 2: no graph for the validation pass,
            val_loss = loss_fn(model(val_u, *params), val_c).item()   # and plain numbers in the history
        history.append(val_loss)
        if val_loss < best_loss:
            best_loss, best_params = val_loss, params.detach().clone()   # bug 3: a copy, not another name
    return best_params, history
    # END SOLUTION


# %%
check("02.5", fit_best)

# %% [markdown]
# ### Exercise 02.6 · Predict divergence from the curvature (difficulty 2, about 20 minutes)
#
# 1. Write `critical_lr(x)`: the critical learning rate $2/\lambda_{\max}$ of plain gradient descent
#    on the MSE of $w\,x + b$, from the Hessian in section 3 (use `torch.linalg.eigvalsh`).
# 2. Write `diverges(x, lr)`, which predicts, *without running gradient descent*, whether 300 steps
#    of plain gradient descent with learning rate `lr` on that input blow up (return a bool).
# 3. Report `critical_lr` for the raw `t_u` and the scaled `t_un`, and compare your predictions with
#    real runs for a few learning rates.
#
# The check compares $\lambda_{\max}$ with its own on hidden inputs (to 1e-6, relative), and your
# predictions with 300 real steps for six hidden learning rates (none within 2% of the critical one).

# %%
def critical_lr(x):
    # BEGIN SOLUTION
    x = torch.as_tensor(x, dtype=torch.float64)
    n = x.numel()
    hessian = (2.0 / n) * torch.stack([torch.stack([(x * x).sum(), x.sum()]),
                                       torch.stack([x.sum(), torch.tensor(float(n), dtype=torch.float64)])])
    return 2.0 / torch.linalg.eigvalsh(hessian)[-1].item()
    # END SOLUTION


def diverges(x, lr):
    # BEGIN SOLUTION
    return lr > critical_lr(x)
    # END SOLUTION


crit_raw = ...     # critical_lr of the raw t_u
crit_scaled = ...  # critical_lr of t_un
# BEGIN SOLUTION
crit_raw = critical_lr(t_u)
crit_scaled = critical_lr(t_un)
print(f"critical lr: raw {crit_raw:.4g}, scaled {crit_scaled:.4g}")
for inp, name in [(t_u, "raw"), (t_un, "scaled")]:
    for lr in [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]:
        p = torch.tensor([1.0, 0.0], dtype=torch.float64)
        x64, y64 = inp.double(), t_c.double()
        start = loss_fn(model(x64, *p), y64)
        for _ in range(300):
            p = p - lr * grad_fn(x64, y64, model(x64, *p), *p)
        end = loss_fn(model(x64, *p), y64)
        blew_up = not torch.isfinite(end) or end > start
        print(f"{name:6s} lr {lr:.0e}: predicted {'diverges' if diverges(inp, lr) else 'converges':9s}  "
              f"ran: {'diverged' if blew_up else 'converged'}")
# END SOLUTION

# %%
check("02.6", critical_lr, diverges, crit_raw, crit_scaled)

# %% [markdown]
# ### Exercise 02.7 · One more parameter (difficulty 2, about 20 minutes)
#
# *Deep Learning with PyTorch* ends chapter 5 with this: replace the line by
# $t_p = w_2\, t^2 + w_1\, t + b$, on the scaled input `t_un`, and train it on the same training split
# as section 9 (`train_indices`; Adam is allowed, and starting from the linear solution helps). Then
# report the training and validation losses of both models, and say which is better on the
# validation points. For the linear model use `split_params` from section 9.
#
# - `quad_params`: a tensor `[w2, w1, b]`;
# - `quad_losses` and `lin_losses`: `(train loss, val loss)` as numbers;
# - `better_on_val`: `"quadratic"` or `"linear"`.
#
# The check recomputes every loss from the parameters you return, and expects the quadratic model's
# training loss to be no worse than the best the line can do (it contains the line as a special case).

# %% tags=["nbval-ignore-output"]
quad_params = ...     # tensor([w2, w1, b])
quad_losses = ...     # (train loss, val loss) of the quadratic model
lin_losses = ...      # (train loss, val loss) of split_params
better_on_val = ...   # "quadratic" or "linear"
# BEGIN SOLUTION
def quad_model(t, w2, w1, b):
    return w2 * t ** 2 + w1 * t + b


qp = torch.tensor([0.0, split_params[0].item(), split_params[1].item()], requires_grad=True)
opt = torch.optim.Adam([qp], lr=1e-2)
for epoch in range(3000):
    opt.zero_grad()
    loss_fn(quad_model(train_t_un, *qp), train_t_c).backward()
    opt.step()
quad_params = qp.detach()
with torch.no_grad():
    quad_losses = (loss_fn(quad_model(train_t_un, *quad_params), train_t_c).item(),
                   loss_fn(quad_model(val_t_un, *quad_params), val_t_c).item())
    lin_losses = (loss_fn(model(train_t_un, *split_params), train_t_c).item(),
                  loss_fn(model(val_t_un, *split_params), val_t_c).item())
better_on_val = "quadratic" if quad_losses[1] < lin_losses[1] else "linear"
print(f"quadratic: w2 = {quad_params[0].item():.4g}, w1 = {quad_params[1].item():.4g}, b = {quad_params[2].item():.4g}")
print(f"train loss: quadratic {quad_losses[0]:.4g}, linear {lin_losses[0]:.4g}")
print(f"val loss:   quadratic {quad_losses[1]:.4g}, linear {lin_losses[1]:.4g}   better on validation: {better_on_val}")
# END SOLUTION

# %% [markdown] tags=["solution"]
# The quadratic model always fits the training points at least as well as the line: setting $w_2 = 0$
# gives back the line, so its best training loss cannot be higher. On this split it is also better on
# the two validation points. Two points are weak evidence, though: a different random split can
# reverse the verdict. To judge how far the curve bends, compare the *terms*, not the coefficients:
# $w_2$ multiplies $t^2$ and $w_1$ multiplies $t$, so their sizes are not comparable directly. Over
# the measured range ($t_{un}$ from about 2 to 8) the fitted $w_2 t^2$ term grows to roughly 16 °C,
# next to about 24 °C for $w_1 t$. What matters is how far the curve departs from a straight line
# over that range: roughly ±1.5 °C, comparable to the scatter of the readings. The physics (a
# Fahrenheit scale is linear in Celsius) says the bend can only be fitting the noise of these
# readings, and outside the range of the data it would carry the curve away from the truth.

# %%
check("02.7", quad_params, split_params, train_indices, val_indices, quad_losses, lin_losses, better_on_val)

# %% [markdown]
# ### Exercise 02.8 · A scalar autodiff engine (difficulty 3, about 40 minutes)
#
# This is the chapter's one deliberate rebuild: close the lesson and **rebuild it from memory**,
# then extend it. Writing the engine yourself is how its two ideas (topological order, `+=`)
# stick, and the extensions are new: division and `exp`, numbers on either side of every operator,
# and the `zero_grad()` that section 6 showed is missing. Write your own `Value` class. It needs:
#
# - `Value(x)` for a number `x`, with attributes `.data` (a float) and `.grad` (starting at 0);
# - `+`, `-`, `*`, `/` between Values and with plain numbers on either side (`2 * a`, `1 - a`,
#   `1 / a`), unary `-a`, and `a ** k` for a number `k`;
# - methods `a.tanh()` and `a.exp()`;
# - `out.backward()`, which fills `.grad` of every Value that `out` depends on, in reverse
#   topological order, adding contributions (a Value used twice gets the sum);
# - `out.zero_grad()`, which sets `.grad` back to 0 for every Value that `out` depends on, so that a
#   second `out.backward()` gives the same gradients as the first.
#
# The check builds six hidden expressions, including a node used several times and a diamond (two
# paths from one input to the output), and compares values and gradients with torch in float64.

# %%
class Value:
    # BEGIN SOLUTION
    def __init__(self, data, parents=()):
        self.data = float(data)
        self.grad = 0.0
        self._parents = parents   # pairs (parent, local derivative)

    @staticmethod
    def lift(x):
        return x if isinstance(x, Value) else Value(x)

    def __add__(self, other):
        other = Value.lift(other)
        return Value(self.data + other.data, ((self, 1.0), (other, 1.0)))

    def __mul__(self, other):
        other = Value.lift(other)
        return Value(self.data * other.data, ((self, other.data), (other, self.data)))

    def __pow__(self, k):
        return Value(self.data ** k, ((self, k * self.data ** (k - 1)),))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, ((self, 1 - t * t),))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, ((self, e),))

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-Value.lift(other))

    def __truediv__(self, other):
        return self * Value.lift(other) ** -1

    def __radd__(self, other):
        return Value.lift(other) + self

    def __rmul__(self, other):
        return Value.lift(other) * self

    def __rsub__(self, other):
        return Value.lift(other) - self

    def __rtruediv__(self, other):
        return Value.lift(other) / self

    def _topological_order(self):
        order, seen = [], set()

        def visit(node):
            if node not in seen:
                seen.add(node)
                for parent, _ in node._parents:
                    visit(parent)
                order.append(node)

        visit(self)
        return order

    def backward(self):
        order = self._topological_order()
        self.grad += 1.0
        for node in reversed(order):
            for parent, local in node._parents:
                parent.grad += local * node.grad

    def zero_grad(self):
        for node in self._topological_order():
            node.grad = 0.0
    # END SOLUTION


# %%
check("02.8", Value)

# %% [markdown]
# ### Exercise 02.9 · Backpropagation through two tanh layers (difficulty 2, about 25 minutes)
#
# Section 7's network had one ReLU layer. Take the backward pass one step further, to the network
# `lin → tanh → lin → tanh → lin → mse`, with weights `w1`, `w2`, `w3` and biases `b1`, `b2`, `b3`.
# Write `tanh_grad(inp, out)`, which sets `inp.g` from `out.g` for `out = torch.tanh(inp)` (hint:
# $\tanh'(u) = 1 - \tanh(u)^2$, and the forward pass already computed $\tanh(u)$), and
# `forward_and_backward_deep(x, y, w1, b1, w2, b2, w3, b3)`, which runs the forward pass, keeping every
# intermediate, and then the backward pass in reverse order. Reuse section 7's `lin`, `mse_out`,
# `mse_grad` and `lin_grad`. Afterwards each of `x`, `w1` … `b3` has a `.g` of its own shape. `y` has
# shape (N,) and the network's output (N, 1). The hidden test shapes include a batch of one example
# and a single input feature; the check compares every `.g` with autograd.

# %%
def tanh_grad(inp, out):
    # BEGIN SOLUTION
    inp.g = (1 - out ** 2) * out.g          # tanh' from the stored output, times the incoming gradient
    # END SOLUTION


def forward_and_backward_deep(x, y, w1, b1, w2, b2, w3, b3):
    # BEGIN SOLUTION
    pre1 = lin(x, w1, b1)
    act1 = torch.tanh(pre1)
    pre2 = lin(act1, w2, b2)
    act2 = torch.tanh(pre2)
    out = lin(act2, w3, b3)
    loss = mse_out(out, y)
    mse_grad(out, y)                         # backward, the mirror image of the forward pass
    lin_grad(act2, out, w3, b3)
    tanh_grad(pre2, act2)
    lin_grad(act1, pre2, w2, b2)
    tanh_grad(pre1, act1)
    lin_grad(x, pre1, w1, b1)
    return loss
    # END SOLUTION


# %%
check("02.9", forward_and_backward_deep)

# %% [markdown]
# ### Exercise 02.10 · A stable softplus with its own backward (difficulty 2, about 15 minutes)
#
# Softplus, $\log(1 + e^x)$, is a smooth cousin of ReLU. Written literally it overflows: $e^{1000}$ is
# `inf` even in float64. Write `MySoftplus`, a `torch.autograd.Function` whose forward is a stable
# version (hint: for $x > 0$, $\log(1 + e^x) = x + \log(1 + e^{-x})$, and `torch.log1p` is accurate
# for small arguments) and whose backward uses the derivative, the sigmoid $1/(1 + e^{-x})$
# (`torch.sigmoid` is stable). The check runs `gradcheck` in float64, and compares the forward with
# `torch.nn.functional.softplus` for inputs up to ±1000 (no inf, no nan).

# %%
class MySoftplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        # BEGIN SOLUTION
        ctx.save_for_backward(x)
        return x.clamp_min(0) + torch.log1p(torch.exp(-x.abs()))
        # END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        # BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(x)
        # END SOLUTION


# %%
check("02.10", MySoftplus)

# %% [markdown]
# ### Exercise 02.11 · A reproducible train/validation split (difficulty 1, about 5 minutes)
#
# Write `split_indices(n, val_frac, generator)`, returning `(train_idx, val_idx)`: a random split of
# `range(n)` with `int(val_frac * n)` validation indices, drawn with the given `torch.Generator` (so
# that equal seeds give equal splits, different seeds different ones), and no index in both.

# %%
def split_indices(n, val_frac, generator):
    # BEGIN SOLUTION
    n_val = int(val_frac * n)
    shuffled = torch.randperm(n, generator=generator)
    return shuffled[n_val:], shuffled[:n_val]
    # END SOLUTION


# %%
check("02.11", split_indices)

# %% [markdown]
# ### Exercise 02.12 · A Jacobian, one row per backward pass (difficulty 2, about 15 minutes)
#
# Section 5 showed that one backward pass from a vector output gives one vector-Jacobian product
# $v^\top J$. Choose the vectors well and you get the whole Jacobian. Write `jacobian_rows(f, x)`:
# `f` maps a 1-d float64 tensor of $n$ elements to one of $m$ elements, and `x` is such an input
# (without `requires_grad`). Return the $m \times n$ Jacobian at `x`, row $i$ being the gradient of
# output $i$, using **one** forward pass and $m$ backward passes with a chosen `gradient`. Do not call
# `torch.autograd.functional.jacobian` or `torch.func`: the check turns them off while it runs, compares
# with an exact Jacobian on three hidden functions (one of them square), and counts your forward passes.

# %%
def jacobian_rows(f, x):
    # BEGIN SOLUTION
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    rows = []
    for i in range(y.numel()):
        pick = torch.zeros_like(y)
        pick[i] = 1.0                          # v = e_i picks out output i
        x.grad = None                          # each row starts from nothing: .grad accumulates
        y.backward(gradient=pick, retain_graph=True)   # the graph is needed again for the next row
        rows.append(x.grad.clone())
    return torch.stack(rows)
    # END SOLUTION


# %%
check("02.12", jacobian_rows)

# %% [markdown]
# ## Further reading
#
# - Eli Stevens, Luca Antiga and Thomas Viehmann, *Deep Learning with PyTorch*, chapter 5, "The
#   mechanics of learning": the thermometer, from hand-written gradients to optimizers and validation.
# - Seth Weidman, *Deep Learning from Scratch*, chapter 1 ("Foundations": derivatives, the chain rule
#   and computational graphs) and chapters 6 and 7 (`NumberWithGrad`, and the same ideas in PyTorch).
# - Jeremy Howard and Sylvain Gugger, *Deep Learning for Coders with fastai and PyTorch*, chapter 4
#   (the seven steps of SGD) and chapter 17 (a neural net, and its backward pass, from the foundations).
# - PyTorch documentation: [Autograd mechanics](https://pytorch.org/docs/stable/notes/autograd.html),
#   [Extending torch.autograd](https://pytorch.org/docs/stable/notes/extending.html) and
#   [torch.func](https://pytorch.org/docs/stable/func.html).
# - Atılım Güneş Baydin, Barak Pearlmutter, Alexey Radul and Jeffrey Siskind, "Automatic
#   differentiation in machine learning: a survey", *JMLR* 18 (2018): forward and reverse mode, and
#   why reverse mode wins for a scalar loss.
# - Christopher Olah, ["Calculus on computational graphs: backpropagation"](https://colah.github.io/posts/2015-08-Backprop/)
#   (2015): paths, sums over paths, and why reverse order avoids the exponential blow-up of section 6.
# - Gabriel Goh, ["Why momentum really works"](https://distill.pub/2017/momentum/), *Distill* (2017):
#   the eigenvalue view of gradient descent from section 3, with interactive figures, extended to momentum.
# - Andrej Karpathy, [micrograd](https://github.com/karpathy/micrograd): a scalar autograd engine and a
#   small neural-net library in about 150 lines, close to Exercise 02.8.
