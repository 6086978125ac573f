# /etc/cron.d/relaymail: runs relaymail's queue every 15 minutes on hosts
# where systemd is not the init (containers, sysvinit). Under systemd,
# relaymail-queue.service does it and this line does nothing.
*/15 * * * *	relaymail	[ -d /run/systemd/system ] || /usr/sbin/relaymail -q
