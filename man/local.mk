# SPDX-License-Identifier: MIT
dist_man_MANS += man/notifyqd.8 man/notifyqctl.1 man/notifyq.yaml.5
dist_man_MANS += man/notifyq-jobs.7

# The pages name the packages' paths (/etc/notifyq.yaml, /var/lib/notifyq,
# /run/notifyq); installed, they name those of this build's configure
# (./configure without flags: under /usr/local), as its binaries use them.
# A page that means the packages' path whatever the build writes it /\&etc/...
MAN_PATHS_SED = -e 's%(^|[^/[:alnum:]_.])/etc/notifyq%\1$(sysconfdir)/notifyq%g' \
	-e 's%(^|[^/[:alnum:]_.])/var/lib/notifyq%\1$(localstatedir)/lib/notifyq%g' \
	-e 's%(^|[^/[:alnum:]_.])/run/notifyq%\1$(runstatedir)/notifyq%g'
install-data-hook: install-man-paths
install-man-paths:
	@for f in $(dist_man_MANS); do \
	    n=$${f##*/}; p="$(DESTDIR)$(mandir)/man$${n##*.}/$$n"; \
	    test -f "$$p" || continue; \
	    sed -E $(MAN_PATHS_SED) "$$p" >"$$p.tmp" && mv "$$p.tmp" "$$p" || exit 1; \
	done
.PHONY: install-man-paths
