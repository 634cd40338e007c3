/*
 * Per-instance Cyrus logs for cyrustest.
 *
 * Cyrus writes its log only through syslog(3), and a test machine may have
 * no syslog daemon at all. cyrustest compiles this file and starts the
 * Cyrus master with it in LD_PRELOAD and ROOKERY_CYRUS_SYSLOG naming a
 * file; every service the master runs inherits both, so each instance gets
 * its own log file. Debian builds Cyrus with _FORTIFY_SOURCE, which turns
 * syslog calls into __syslog_chk, so those entry points are replaced too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char tag[128] = "cyrus";
static int mask = 0xff;

void openlog(const char *ident, int option, int facility)
{
	(void)option;
	(void)facility;
	if (ident != NULL)
		snprintf(tag, sizeof tag, "%s", ident);
}

void closelog(void)
{
}

int setlogmask(int newmask)
{
	int old = mask;

	if (newmask != 0)
		mask = newmask;
	return old;
}

void vsyslog(int priority, const char *format, va_list ap)
{
	static const char *const level[] = {"emerg", "alert", "crit", "err",
					    "warning", "notice", "info", "debug"};
	int saved = errno;
	const char *file = getenv("ROOKERY_CYRUS_SYSLOG");
	char text[4096], out[4352];
	struct timespec now;
	struct tm tm;
	size_t n;
	int fd, len;

	if (file == NULL || *file == '\0' || !(LOG_MASK(LOG_PRI(priority)) & mask))
		return;
	errno = saved; /* %m in format wants the caller's errno */
	vsnprintf(text, sizeof text, format, ap);
	n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	len = snprintf(out, sizeof out, "%02d:%02d:%02d.%03ldZ %s[%ld] %s: %s\n",
		       tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000L,
		       tag, (long)getpid(), level[LOG_PRI(priority)], text);
	if (len < 0)
		goto out;
	if ((size_t)len >= sizeof out)
		len = sizeof out - 1;
	/* One O_APPEND write per line keeps lines of concurrent services whole. */
	fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd >= 0) {
		if (write(fd, out, (size_t)len) < 0) {
			/* nowhere left to report it */
		}
		close(fd);
	}
out:
	errno = saved;
}

void syslog(int priority, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	vsyslog(priority, format, ap);
	va_end(ap);
}

void __vsyslog_chk(int priority, int flag, const char *format, va_list ap)
{
	(void)flag;
	vsyslog(priority, format, ap);
}

void __syslog_chk(int priority, int flag, const char *format, ...)
{
	va_list ap;

	(void)flag;
	va_start(ap, format);
	vsyslog(priority, format, ap);
	va_end(ap);
}
