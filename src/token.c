/*
 * token.c — signed, expiring tokens for links in mail (unsubscribe now;
 * confirmation and click tracking use the same form).
 *
 * A token is base64url(expiry || payload) "." base64url(mac), where expiry is
 * the expiry time as 8 big-endian bytes (Unix seconds) and mac the first 16
 * bytes of HMAC-SHA256(segment.secret, purpose || 0x00 || expiry || payload),
 * computed with PostgreSQL's own src/common HMAC.  Binding the purpose means a
 * token made for one use is refused for another.
 */
#include "segment.h"

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#define TOKEN_MAC_LEN 16

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
Base64UrlEncode(StringInfo out, const uint8 *data, size_t len)
{
	size_t		i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];

		appendStringInfoChar(out, b64url[(v >> 18) & 63]);
		appendStringInfoChar(out, b64url[(v >> 12) & 63]);
		appendStringInfoChar(out, b64url[(v >> 6) & 63]);
		appendStringInfoChar(out, b64url[v & 63]);
	}
	if (len - i == 1)
	{
		uint32		v = data[i] << 16;

		appendStringInfoChar(out, b64url[(v >> 18) & 63]);
		appendStringInfoChar(out, b64url[(v >> 12) & 63]);
	}
	else if (len - i == 2)
	{
		uint32		v = (data[i] << 16) | (data[i + 1] << 8);

		appendStringInfoChar(out, b64url[(v >> 18) & 63]);
		appendStringInfoChar(out, b64url[(v >> 12) & 63]);
		appendStringInfoChar(out, b64url[(v >> 6) & 63]);
	}
}

/* Decode base64url without padding; false on any character outside the alphabet. */
static bool
Base64UrlDecode(const char *s, size_t len, uint8 **out, size_t *outlen)
{
	uint8	   *buf = palloc(len * 3 / 4 + 3);
	size_t		n = 0;
	uint32		acc = 0;
	int			bits = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		const char *p = memchr(b64url, s[i], 64);

		if (s[i] == '\0' || p == NULL)
			return false;
		acc = (acc << 6) | (uint32) (p - b64url);
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			buf[n++] = (uint8) (acc >> bits);
		}
	}
	/*
	 * Only the canonical encoding: the bits left over after the last whole
	 * byte must be zero, else several strings would decode to one token and
	 * an altered last character would still verify.
	 */
	if (len % 4 == 1 || (acc & ((1U << bits) - 1)) != 0)
		return false;
	*out = buf;
	*outlen = n;
	return true;
}

static void
RequireSecret(void)
{
	if (segment_secret == NULL || strlen(segment_secret) < 16)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg(segment_secret && segment_secret[0] ? "segment.secret is too short" : "segment.secret is not set"),
				 errdetail("Signed links need an HMAC key of at least 16 characters."),
				 errhint("Set it in postgresql.conf or with ALTER SYSTEM SET segment.secret = '...' and reload.")));
}

static void
ComputeMac(const char *purpose, const uint8 *body, size_t bodylen, uint8 *mac)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	uint8		full[PG_SHA256_DIGEST_LENGTH];
	uint8		zero = 0;

	if (ctx == NULL ||
		pg_hmac_init(ctx, (const uint8 *) segment_secret, strlen(segment_secret)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) purpose, strlen(purpose)) < 0 ||
		pg_hmac_update(ctx, &zero, 1) < 0 ||
		pg_hmac_update(ctx, body, bodylen) < 0 ||
		pg_hmac_final(ctx, full, sizeof(full)) < 0)
	{
		const char *msg = ctx ? pg_hmac_error(ctx) : "out of memory";

		pg_hmac_free(ctx);
		elog(ERROR, "could not compute HMAC: %s", msg);
	}
	pg_hmac_free(ctx);
	memcpy(mac, full, TOKEN_MAC_LEN);
}

/* A token for purpose carrying payload, valid until expires. */
static char *
MakeToken(const char *purpose, const char *payload, TimestampTz expires)
{
	size_t		plen = strlen(payload);
	uint8	   *body = palloc(8 + plen);
	int64		secs = (int64) (expires / USECS_PER_SEC) +
		(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
	uint8		mac[TOKEN_MAC_LEN];
	StringInfoData out;
	int			i;

	RequireSecret();
	for (i = 0; i < 8; i++)
		body[i] = (uint8) (secs >> (56 - 8 * i));
	memcpy(body + 8, payload, plen);
	ComputeMac(purpose, body, 8 + plen, mac);

	initStringInfo(&out);
	Base64UrlEncode(&out, body, 8 + plen);
	appendStringInfoChar(&out, '.');
	Base64UrlEncode(&out, mac, TOKEN_MAC_LEN);
	return out.data;
}

static void InvalidToken(const char *why) pg_attribute_noreturn();

static void
InvalidToken(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid or expired token"),
			 errdetail("%s", why),
			 errhint("Links in mail expire; ask for a new one.")));
}

/* The payload of a valid token for purpose; an error when forged, malformed or expired. */
static char *
VerifyToken(const char *purpose, const char *token)
{
	const char *dot = strchr(token, '.');
	uint8	   *body;
	size_t		bodylen = 0;
	uint8	   *mac;
	size_t		maclen = 0;
	uint8		want[TOKEN_MAC_LEN];
	int64		secs = 0;
	TimestampTz expires;
	int			i;
	uint8		diff = 0;

	RequireSecret();
	if (dot == NULL ||
		!Base64UrlDecode(token, dot - token, &body, &bodylen) ||
		!Base64UrlDecode(dot + 1, strlen(dot + 1), &mac, &maclen) ||
		bodylen < 8 || maclen != TOKEN_MAC_LEN)
		InvalidToken("The token is malformed.");

	ComputeMac(purpose, body, bodylen, want);
	for (i = 0; i < TOKEN_MAC_LEN; i++)
		diff |= want[i] ^ mac[i];	/* constant time */
	if (diff != 0)
		InvalidToken("The token's signature does not match.");

	for (i = 0; i < 8; i++)
		secs = (secs << 8) | body[i];
	expires = (TimestampTz) (secs - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
	if (expires < SegmentNow())
		InvalidToken("The token has expired.");
	if (memchr(body + 8, '\0', bodylen - 8) != NULL)
		InvalidToken("The token is malformed.");
	return pnstrdup((const char *) body + 8, bodylen - 8);
}

/* segment.sign_token(purpose, payload, expires_at) → text */
PG_FUNCTION_INFO_V1(segment_sign_token);
Datum
segment_sign_token(PG_FUNCTION_ARGS)
{
	char	   *purpose = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *payload = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_TEXT_P(cstring_to_text(MakeToken(purpose, payload, PG_GETARG_TIMESTAMPTZ(2))));
}

/* segment.verify_token(purpose, token) → payload */
PG_FUNCTION_INFO_V1(segment_verify_token);
Datum
segment_verify_token(PG_FUNCTION_ARGS)
{
	char	   *purpose = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *token = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_TEXT_P(cstring_to_text(VerifyToken(purpose, token)));
}
