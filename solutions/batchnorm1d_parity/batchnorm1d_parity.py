# %% imports
import torch


# %% batchnorm1d-class
class BatchNorm1d:
    """Batch normalisation over the features of an (N, dim) input, computed the way
    torch.nn.BatchNorm1d computes it, in a plain Python class."""

    def __init__(self, dim, eps=1e-5, momentum=0.1):
        self.eps = eps
        self.momentum = momentum  # PyTorch's convention: the weight given to the NEW batch
        self.training = True

        # PART 1: the learnable scale gamma (all ones) and shift beta (all zeros): one value
        # per feature, shape (dim,), and autograd must track them.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER self.gamma = torch.ones(1)
        ### PLACEHOLDER self.beta = torch.ones(1)
        self.gamma = torch.ones(dim, requires_grad=True)
        self.beta = torch.zeros(dim, requires_grad=True)
        ### END SOLUTION

        # PART 2: the running statistics used in eval mode, shape (dim,): running_mean starts at
        # zeros, running_var at ones. They are state, not parameters.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER self.running_mean = torch.zeros(1)
        ### PLACEHOLDER self.running_var = torch.ones(1)
        self.running_mean = torch.zeros(dim)
        self.running_var = torch.ones(dim)
        ### END SOLUTION

    def __call__(self, x):
        # PART 3: the statistics to normalise with, one per feature. In training
        # (self.training is True): the batch mean and the BIASED batch variance (divide by N)
        # over dimension 0. In eval: the running statistics.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER mean = torch.zeros(1)
        ### PLACEHOLDER var = torch.ones(1)
        if self.training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, correction=0)
        else:
            mean = self.running_mean
            var = self.running_var
        ### END SOLUTION

        # PART 4: normalise with eps inside the square root, then scale and shift. Keep the
        # result in self.out.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER x_hat = torch.zeros(1)
        ### PLACEHOLDER self.out = torch.zeros(1)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        self.out = self.gamma * x_hat + self.beta
        ### END SOLUTION

        # PART 5: in training only, update the running statistics the way PyTorch does:
        # running = (1 - momentum) * running + momentum * batch statistic, where the variance
        # statistic is the UNBIASED one (divide by N - 1). No autograd history, shape (dim,).
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER pass
        if self.training:
            n = x.shape[0]
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var * n / (n - 1)
        ### END SOLUTION
        return self.out

    def parameters(self):
        # PART 6: the learnable tensors, gamma first, as a list.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER return []
        return [self.gamma, self.beta]
        ### END SOLUTION
