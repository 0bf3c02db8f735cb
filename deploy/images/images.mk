# Make targets for Steward's local container images (included by the top-level Makefile).
# The images are built on this machine without any registry: see deploy/images/README-images.md.
.PHONY: images images-clean

# Builds what is missing, refreshes the service images through docker's layer cache (quick when unchanged).
images:
	deploy/scripts/ensure-dockerd.sh
	deploy/images/build.sh

# Removes the images build.sh made (service images first: they depend on the bases).
images-clean:
	@for n in cvmfs-standin htcondor squid base-trixie base-bookworm; do \
		if docker image inspect steward/$$n:local >/dev/null 2>&1; then \
			echo "docker rmi steward/$$n:local"; docker rmi steward/$$n:local >/dev/null; fi; \
	done
