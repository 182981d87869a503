# %% imports
import torch


# %% batchnorm-functions
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalization at training time, one small step at a time.

    x: (N, D) mini-batch; gamma, beta: (D,) scale and shift; eps: added to the variance.
    Returns (out, cache): out has x's shape, cache is whatever the backward pass needs.
    """
    # PART 1: normalise each feature (each column of x) with the mean and the biased variance
    # of the batch, then scale by gamma and shift by beta. Write it as a chain of small steps
    # and keep the intermediate values in `cache`: the backward pass walks the same chain.
    # UPDATE:
    ### BEGIN SOLUTION
    ### PLACEHOLDER out = torch.zeros(1)
    ### PLACEHOLDER cache = None
    N = x.shape[0]
    mean = x.sum(dim=0) / N  # 1. mean of each feature
    xmu = x - mean  # 2. centre
    sq = xmu ** 2  # 3. square
    var = sq.sum(dim=0) / N  # 4. biased variance
    std = torch.sqrt(var + eps)  # 5. standard deviation
    inv_std = 1.0 / std  # 6. invert
    x_hat = xmu * inv_std  # 7. normalise
    out = gamma * x_hat + beta  # 8. scale and shift
    cache = (x_hat, xmu, std, inv_std, gamma)
    ### END SOLUTION
    return out, cache


def batchnorm_backward(dout, cache):
    """Gradients of the loss with respect to x, gamma and beta, given dout = dloss/dout.

    Staged: back through the forward pass's steps in reverse order, one local derivative each.
    Returns (dx, dgamma, dbeta) with the shapes of x, gamma and beta.
    """
    # PART 2: walk the forward pass backwards: out = gamma * x_hat + beta, then the
    # normalisation, the inverse, the square root, the variance, the centring and the mean.
    # Where a value feeds two steps (the centred input does), add up the gradients from both.
    # UPDATE:
    ### BEGIN SOLUTION
    ### PLACEHOLDER dx = torch.zeros(1)
    ### PLACEHOLDER dgamma = torch.zeros(1)
    ### PLACEHOLDER dbeta = torch.zeros(1)
    x_hat, xmu, std, inv_std, gamma = cache
    N = dout.shape[0]
    dbeta = dout.sum(dim=0)  # 8. out = gamma * x_hat + beta
    dgamma = (dout * x_hat).sum(dim=0)
    dx_hat = dout * gamma
    dinv_std = (dx_hat * xmu).sum(dim=0)  # 7. x_hat = xmu * inv_std
    dxmu = dx_hat * inv_std
    dstd = -dinv_std / std ** 2  # 6. inv_std = 1 / std
    dvar = 0.5 * dstd / std  # 5. std = sqrt(var + eps)
    dsq = dvar / N * torch.ones_like(dout)  # 4. var = sum(sq) / N
    dxmu = dxmu + 2 * xmu * dsq  # 3. sq = xmu ** 2 (xmu's second use)
    dmean = -dxmu.sum(dim=0)  # 2. xmu = x - mean
    dx = dxmu + dmean / N  # 1. mean = sum(x) / N
    ### END SOLUTION
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """The same gradients as batchnorm_backward, from the closed form of dx worked out on paper.

    Returns (dx, dgamma, dbeta).
    """
    # PART 3: dbeta and dgamma as before; dx in one expression of dout, x_hat, the inverse
    # standard deviation and N.
    # UPDATE:
    ### BEGIN SOLUTION
    ### PLACEHOLDER dx = torch.zeros(1)
    ### PLACEHOLDER dgamma = torch.zeros(1)
    ### PLACEHOLDER dbeta = torch.zeros(1)
    x_hat, _, _, inv_std, gamma = cache
    N = dout.shape[0]
    dbeta = dout.sum(dim=0)
    dgamma = (dout * x_hat).sum(dim=0)
    dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)
    ### END SOLUTION
    return dx, dgamma, dbeta


# %% try-it
def numerical_gradient(f, t, dout, h=1e-5):
    """Central differences of sum(f() * dout) with respect to each entry of t (nudged in place, then restored)."""
    grad = torch.zeros_like(t)
    flat, flat_grad = t.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        plus = (f() * dout).sum()
        flat[i] = old - h
        minus = (f() * dout).sum()
        flat[i] = old
        flat_grad[i] = (plus - minus) / (2 * h)
    return grad


def gradient_error(got, want):
    """max|got - want| / (max|got| + max|want|), or what stops the comparison."""
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        return f"shape {shape}, expected {tuple(want.shape)}"
    scale = (got.abs().max() + want.abs().max()).item()
    return f"{(got - want).abs().max().item() / scale:.1e}" if scale else "0"


generator = torch.Generator().manual_seed(0)
x_try = 3 * torch.randn(6, 3, generator=generator, dtype=torch.float64) - 2
gamma_try = torch.randn(3, generator=generator, dtype=torch.float64)
beta_try = torch.randn(3, generator=generator, dtype=torch.float64)
dout_try = torch.randn(6, 3, generator=generator, dtype=torch.float64)


def forward_try():
    return batchnorm_forward(x_try, gamma_try, beta_try)[0]


numerical = [numerical_gradient(forward_try, t, dout_try) for t in (x_try, gamma_try, beta_try)]
_, cache_try = batchnorm_forward(x_try, gamma_try, beta_try)
for backward in (batchnorm_backward, batchnorm_backward_alt):
    grads = backward(dout_try, cache_try)
    errors = ", ".join(f"{name} {gradient_error(got, want)}"
                       for name, got, want in zip(("dx", "dgamma", "dbeta"), grads, numerical))
    print(f"{backward.__name__}: {errors}")
