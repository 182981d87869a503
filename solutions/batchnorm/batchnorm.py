# %% imports
import torch
from torch import nn


# %% batchnorm-class
class BatchNorm(nn.Module):
    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError(f"BatchNorm expects a shape of length 2 (N, L) or 4 (N, C, H, W), got {tuple(shape)}")
        self.eps = eps
        self.momentum = momentum

        # PART 1: the learnable scale gamma and shift beta, one value per feature or channel.
        # Their shape depends on whether the input comes from a fully connected layer (N, L) or
        # a convolutional one (N, C, H, W): work it out from `shape`, so that it broadcasts
        # against the input.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER self.gamma = torch.ones(1)
        ### PLACEHOLDER self.beta = torch.ones(1)
        param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        ### END SOLUTION

        # PART 2: the moving mean and moving variance used at test time, shaped like gamma. They
        # are state, not learnable: keep them out of the parameters. moving_sigma holds a variance.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER self.moving_mu = torch.zeros(1)
        ### PLACEHOLDER self.moving_sigma = torch.zeros(1)
        self.register_buffer("moving_mu", torch.zeros(param_shape))
        self.register_buffer("moving_sigma", torch.ones(param_shape))
        ### END SOLUTION

    def forward(self, x):
        if not torch.is_grad_enabled():
            # PART 3: test time. Normalise with the moving averages instead of batch statistics.
            # UPDATE:
            ### BEGIN SOLUTION
            ### PLACEHOLDER x_hat = torch.zeros(1)
            x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)
            ### END SOLUTION
            self._tmp_x_hat_test = x_hat
        else:
            if len(x.shape) == 2:
                # PART 4: fully connected. Mean and unbiased variance of each feature over the batch.
                # UPDATE:
                ### BEGIN SOLUTION
                ### PLACEHOLDER mean = torch.zeros(1)
                ### PLACEHOLDER var = torch.zeros(1)
                mean = x.mean(dim=0, keepdim=True)
                var = x.var(dim=0, keepdim=True)
                ### END SOLUTION
            elif len(x.shape) == 4:
                # PART 5: convolutional. Mean and unbiased variance of each channel over the batch
                # and both spatial dimensions.
                # Hint: keepdim=True keeps the shape (1, C, 1, 1), which broadcasts against x.
                # UPDATE:
                ### BEGIN SOLUTION
                ### PLACEHOLDER mean = torch.zeros(1)
                ### PLACEHOLDER var = torch.zeros(1)
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                var = x.var(dim=(0, 2, 3), keepdim=True)
                ### END SOLUTION
            else:
                raise ValueError(f"BatchNorm expects a 2-D or 4-D input, got {len(x.shape)}-D")
            self._tmp_mean = mean
            self._tmp_var = var

            # PART 6: training time. Normalise with the batch statistics.
            # UPDATE:
            ### BEGIN SOLUTION
            ### PLACEHOLDER x_hat = torch.zeros(1)
            x_hat = (x - mean) / torch.sqrt(var + self.eps)
            ### END SOLUTION
            self._tmp_x_hat_train = x_hat

            # PART 7: update the moving averages: new = momentum * old + (1 - momentum) * batch value.
            # They must not carry gradients, and must not change the old tensors in place.
            # UPDATE:
            ### BEGIN SOLUTION
            ### PLACEHOLDER self.moving_mu = torch.zeros(1)
            ### PLACEHOLDER self.moving_sigma = torch.zeros(1)
            with torch.no_grad():
                self.moving_mu = self.momentum * self.moving_mu + (1 - self.momentum) * mean
                self.moving_sigma = self.momentum * self.moving_sigma + (1 - self.momentum) * var
            ### END SOLUTION
            self._tmp_moving_mu = self.moving_mu
            self._tmp_moving_sigma = self.moving_sigma

        # PART 8: scale by gamma and shift by beta.
        # UPDATE:
        ### BEGIN SOLUTION
        ### PLACEHOLDER z = torch.zeros(1)
        z = self.gamma * x_hat + self.beta
        ### END SOLUTION
        return z
