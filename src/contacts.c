/*
 * contacts.c — glue for contact profiles: time zone validation.
 */
#include "segment.h"

#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

/* Upper-cased IANA name → canonical name, built once per backend. */
typedef struct TimeZoneEntry
{
	char		key[TZ_STRLEN_MAX + 1];
	char		canonical[TZ_STRLEN_MAX + 1];
} TimeZoneEntry;

static HTAB *time_zones = NULL;

static void
UpperName(char *dst, const char *src)
{
	int			i;

	for (i = 0; src[i] && i < TZ_STRLEN_MAX; i++)
		dst[i] = pg_toupper((unsigned char) src[i]);
	dst[i] = '\0';
}

/*
 * Load the names of the time zone database (the same list as
 * pg_timezone_names): validation then costs a hash probe, not a scan of the
 * zone files on every write.
 */
static void
LoadTimeZones(void)
{
	HASHCTL		ctl;
	pg_tzenum  *tzenum;
	pg_tz	   *tz;
	HTAB	   *tab;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TZ_STRLEN_MAX + 1;
	ctl.entrysize = sizeof(TimeZoneEntry);
	ctl.hcxt = TopMemoryContext;
	tab = hash_create("segment time zones", 1024, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	tzenum = pg_tzenumerate_start();
	while ((tz = pg_tzenumerate_next(tzenum)) != NULL)
	{
		const char *name = pg_get_timezone_name(tz);
		char		key[TZ_STRLEN_MAX + 1];
		TimeZoneEntry *e;
		bool		found;

		if (name == NULL || strlen(name) > TZ_STRLEN_MAX)
			continue;
		UpperName(key, name);
		e = hash_search(tab, key, HASH_ENTER, &found);
		if (!found)
			strlcpy(e->canonical, name, sizeof(e->canonical));
	}
	pg_tzenumerate_end(tzenum);
	time_zones = tab;
}

/*
 * segment.canonical_time_zone(name): the IANA zone name in its canonical
 * spelling ('europe/berlin' → 'Europe/Berlin'), or NULL when the time zone
 * database has no such zone.  POSIX specs and abbreviations are not zones.
 */
PG_FUNCTION_INFO_V1(segment_canonical_time_zone);
Datum
segment_canonical_time_zone(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		key[TZ_STRLEN_MAX + 1];
	TimeZoneEntry *e;

	if (strlen(name) > TZ_STRLEN_MAX)
		PG_RETURN_NULL();
	if (time_zones == NULL)
		LoadTimeZones();
	UpperName(key, name);
	e = hash_search(time_zones, key, HASH_FIND, NULL);
	if (e == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(e->canonical));
}
