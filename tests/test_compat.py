"The torchvision fix (ditgaze.compat): diffusers and lpips import and run on this machine's torch."
import subprocess, sys, textwrap

import pytest


def _py(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)


def test_diffusers_and_lpips_run_after_ensure_torchvision():
    r = _py("""
        import torch
        from ditgaze.compat import ensure_torchvision
        print(ensure_torchvision())
        from diffusers import AutoencoderKL, DDIMScheduler
        import lpips
        vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=2)
        x = torch.rand(1, 3, 16, 16) * 2 - 1
        z = vae.encode(x).latent_dist.mode()
        assert vae.decode(z).sample.shape == x.shape
        DDIMScheduler(num_train_timesteps=10).set_timesteps(5)
        net = lpips.LPIPS(net='vgg', pretrained=False, pnet_rand=True, verbose=False)
        assert net(x, x).abs().max().item() < 1e-6
        print("ran")
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    status, ran = r.stdout.split()
    assert status in ("ok", "patched", "absent") and ran == "ran"


def test_patch_only_where_needed():
    "Where torchvision's extension loads, nothing is patched; where it cannot, plain `import torchvision` fails without the fix."
    from ditgaze.compat import torchvision_extension_loads
    loads = torchvision_extension_loads()
    if loads is None: pytest.skip("torchvision not installed")
    r = _py("from ditgaze.compat import ensure_torchvision; print(ensure_torchvision())")
    assert r.stdout.split()[-1] == ("ok" if loads else "patched")
    bare = _py("import torchvision")
    assert (bare.returncode == 0) == loads, bare.stderr[-500:]
    if not loads: assert "torchvision::nms does not exist" in bare.stderr


def test_import_ditgaze_is_light():
    r = _py("import sys, ditgaze; print(ditgaze.__version__); assert 'torchvision' not in sys.modules")
    assert r.returncode == 0, r.stderr
