"""What runs inside the sandbox, and nothing else: the zygote, the per-submission world, the
object server and the wire protocol. The sandbox mounts this package alone (the rest of the kit,
with its checks and solutions, stays outside), so it imports only the standard library, torch,
safetensors and IPython's cell transformer."""
