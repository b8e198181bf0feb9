"""Networks for structural tests: ones that change pixels, not ones that restore well."""


def active_network():
    """A seeded network whose every head is non-zero, so each code path changes the pixels."""
    import torch

    from imagemend.model.core.net import ImagemendNet

    torch.manual_seed(0)
    net = ImagemendNet()
    for head in (net.local.denoise[0], net.local.deblur[0]):
        torch.nn.init.normal_(head.weight, std=0.01)
    for head in net.glob.heads.values():
        torch.nn.init.normal_(head.weight, std=0.05)
    return net.eval()
