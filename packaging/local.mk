# SPDX-License-Identifier: MIT
# systemd integration files, and the packaging that scripts/package builds
# from the `make dist` tarball (so the tarball must carry all of it).
#
# The directories default under $(prefix), which keeps `make distcheck` inside
# its sandbox; packages set them on the make command line (debian/rules,
# notifyq.spec) to where their systemd reads them.
systemdsystemunitdir = $(prefix)/lib/systemd/system
sysusersdir = $(prefix)/lib/sysusers.d
tmpfilesdir = $(prefix)/lib/tmpfiles.d

# The installed unit names $(sbindir)/notifyqd; the source file keeps the
# packages' /usr/sbin so that it lints as it stands. sysusers.d and tmpfiles.d
# read <package>.conf, hence the renamed copies.
systemdsystemunit_DATA = packaging/notifyq.service
sysusers_DATA = packaging/sysusers.d/notifyq.conf
tmpfiles_DATA = packaging/tmpfiles.d/notifyq.conf
CLEANFILES += $(systemdsystemunit_DATA) $(sysusers_DATA) $(tmpfiles_DATA)

packaging/notifyq.service: $(srcdir)/packaging/systemd/notifyq.service
	$(AM_V_GEN)$(MKDIR_P) packaging && \
	sed 's|/usr/sbin/notifyqd|$(sbindir)/notifyqd|g' $(srcdir)/packaging/systemd/notifyq.service >$@
packaging/sysusers.d/notifyq.conf: $(srcdir)/packaging/systemd/notifyq.sysusers
	$(AM_V_GEN)$(MKDIR_P) packaging/sysusers.d && \
	cp $(srcdir)/packaging/systemd/notifyq.sysusers $@
packaging/tmpfiles.d/notifyq.conf: $(srcdir)/packaging/systemd/notifyq.tmpfiles
	$(AM_V_GEN)$(MKDIR_P) packaging/tmpfiles.d && \
	cp $(srcdir)/packaging/systemd/notifyq.tmpfiles $@

EXTRA_DIST += \
	packaging/systemd/notifyq.service \
	packaging/systemd/notifyq.sysusers \
	packaging/systemd/notifyq.tmpfiles \
	packaging/debian \
	packaging/rpm/notifyq.spec \
	packaging/rpm/notifyq.rpmlintrc
