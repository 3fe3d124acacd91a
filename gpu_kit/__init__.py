"""gpu_kit: check the stored notebook outputs on a bare GPU machine, reached by one shell command per call.

`make gpu-bundle` (bundle.py) packs, per group of chapters, the wheels that machine lacks and the
prepared data into .gpu/<bundle>/; `bash gpu_kit/run.sh .gpu/<bundle>` runs there (or, with
--dry-run, here) and checks the chapters with nbval on the course-gpu and the course-cpu kernel.
See CONTRIBUTING.md, "Checking the outputs on a GPU".

Modules, by concern:
    config     the split into bundles, the size limit, the GPU machine's Python and platform
    imports    which distributions a chapter imports (ast over the chapter and course_utils)
    deps       requirement closures: what to bundle, and whether an installed folder is complete
    wheels     which version of a distribution, fetched once with pip into .gpu/wheel-cache
    datasets   which prepared datasets to carry and which to rebuild there
    archive    reproducible tar.xz archives; wheels re-zipped uncompressed so xz packs them well
    manifest   the bundle's manifest: written here, verified and unpacked there (stdlib only)
    checkout   course-utils metadata for the checkout, without a build backend (stdlib only)
    summary    the report of a run: steps, cells per notebook and kernel, seconds (stdlib only)
    standin    dry run only: .venv's copies of the GPU machine's own packages for the 3.12 here
    bundle     `make gpu-bundle`
    run.sh     the script for the GPU machine
"""
