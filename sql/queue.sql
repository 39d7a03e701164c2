-- The send queue: enqueue builds the message in C and queues it; send renders a
-- template first; suppressions; the queue view.  (The worker is tested by the
-- integration tests; this database is not the one it drains.)
CREATE EXTENSION segment;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.from_address = 'Shop <news@shop.example>';

SELECT segment.upsert_contact('ann@example.com', first_name => 'Ann', last_name => 'Müller') AS ann \gset
SELECT segment.upsert_contact('bob@example.com') AS bob \gset
UPDATE segment.contacts SET status = 'subscribed' WHERE id = :ann;

-- Headers of a queued message, unfolded, one per line, without the varying ones.
CREATE FUNCTION pg_temp.headers(msg bigint) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT regexp_replace(h, E'\r\n([ \t])', '\1', 'g') AS header FROM segment.messages m,
         regexp_split_to_table(split_part(m.mime, E'\r\n\r\n', 1), E'\r\n(?![ \t])') AS h
   WHERE m.id = msg AND h !~ '^(Date|Message-ID|Content-Type):'
$$;

-- A transactional message to a pending contact: queued at once, no List-Unsubscribe.
SELECT segment.enqueue(:bob, 'Your receipt', '<p>Thanks</p>', 'Thanks') AS m1 \gset
SELECT kind, status, attempts, mail_from, rcpt_to, subject, lease_until, sent_at,
       next_attempt_at <= now() AS due_now, message_id ~ '^[0-9a-f]{32}@shop\.example$' AS message_id_ok
  FROM segment.messages WHERE id = :m1;
SELECT * FROM pg_temp.headers(:m1);
SELECT mime ~ E'\r\nMessage-ID: <[0-9a-f]{32}@shop\\.example>\r\n' AS has_message_id,
       mime ~ E'\r\nDate: [A-Z][a-z]{2}, \\d\\d [A-Z][a-z]{2} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\r\n' AS has_date,
       mime ~ E'multipart/alternative;\r\n boundary="=_segment_[0-9A-F]{16}"' AS multipart,
       mime !~ E'[^\r]\n' AS crlf_only
  FROM segment.messages WHERE id = :m1;

-- Non-ASCII names and subjects become encoded-words; custom headers and Reply-To.
SELECT segment.enqueue(:ann, 'Grüße, Ann', '<p>Hallo</p>', NULL,
                       '{"reply_to": "Support <help@shop.example>",
                         "headers": {"X-Campaign": "spring", "X-Note": "süß"},
                         "template": "welcome"}') AS m2 \gset
SELECT * FROM pg_temp.headers(:m2);
SELECT template, subject FROM segment.messages WHERE id = :m2;

-- Marketing mail to a subscribed contact carries List-Unsubscribe and one-click.
SELECT segment.enqueue(:ann, 'Spring sale', '<p>Sale</p>', 'Sale',
                       '{"kind": "marketing", "unsubscribe_url": "https://shop.example/u/abc",
                         "unsubscribe_mailto": "mailto:unsub@shop.example?subject=unsubscribe",
                         "campaign_id": 7, "variant": "B", "from": "Deals <deals@shop.example>"}') AS m3 \gset
SELECT * FROM pg_temp.headers(:m3);
SELECT kind, campaign_id, variant, mail_from FROM segment.messages WHERE id = :m3;

-- Without an explicit URL, marketing mail uses segment.unsubscribe_url(contact, campaign).
SET segment.unsubscribe_url = 'https://shop.example/unsubscribe';
SET segment.secret = 'queue-test-secret';
SELECT segment.enqueue(:ann, 'News', NULL, 'News', '{"kind": "marketing", "campaign": "news"}') AS m4 \gset
-- The mailto: target defaults to the From address (segment.unsubscribe_mailto empty).
SELECT h ~ '^List-Unsubscribe: <mailto:news@shop\.example\?subject=unsubscribe>, +<https://shop\.example/unsubscribe\?token=[A-Za-z0-9_.-]+>$' AS signed_link
  FROM pg_temp.headers(:m4) AS h WHERE h LIKE 'List-Unsubscribe:%';
SELECT segment.unsubscribe(substring(mime FROM 'token=([A-Za-z0-9_.-]+)>')) = :ann AS token_unsubscribes
  FROM segment.messages WHERE id = :m4;
UPDATE segment.contacts SET status = 'subscribed' WHERE id = :ann;
-- segment.unsubscribe_mailto sets it for every marketing message, 'none' leaves it out.
SET segment.unsubscribe_mailto = 'mailto:unsubscribe@shop.example?subject=stop';
SELECT regexp_replace(h, 'token=[A-Za-z0-9_.-]+', 'token=...') AS list_unsubscribe
  FROM pg_temp.headers(segment.enqueue(:ann, 'News', NULL, 'News', '{"kind": "marketing"}')) AS h
 WHERE h LIKE 'List-Unsubscribe:%';
SET segment.unsubscribe_mailto = 'none';
SELECT regexp_replace(h, 'token=[A-Za-z0-9_.-]+', 'token=...') AS list_unsubscribe
  FROM pg_temp.headers(segment.enqueue(:ann, 'News', NULL, 'News', '{"kind": "marketing"}')) AS h
 WHERE h LIKE 'List-Unsubscribe:%';
RESET segment.unsubscribe_mailto;
-- Anything else is refused when it is set.
SET segment.unsubscribe_mailto = 'unsubscribe@shop.example';
SET segment.unsubscribe_mailto = 'mailto:a@shop.example, <https://evil.example>';
UPDATE segment.contacts SET status = 'subscribed' WHERE id = :ann;
RESET segment.unsubscribe_url;
RESET segment.secret;

-- A later send_at is when it becomes due.
SELECT segment.enqueue(:bob, 'Later', NULL, 'Later', '{"send_at": "2099-01-01 09:00+00"}') AS m5 \gset
SELECT next_attempt_at FROM segment.messages WHERE id = :m5;

-- segment.send renders a stored template: transactional, pending contacts too.
SELECT segment.create_template('receipt', 'Receipt {{order}} for {{first_name | default: "you"}}',
                               '<p>Order {{order}}</p>', 'Order {{order}}') IS NOT NULL AS created;
SELECT segment.send(:bob, 'receipt', '{"order": "A-17"}') AS m6 \gset
SELECT kind, template, subject, status FROM segment.messages WHERE id = :m6;
SELECT * FROM pg_temp.headers(:m6);
SELECT mime LIKE E'%\r\n\r\nOrder A-17\r\n--=\\_segment\\_%' AS text_part,
       mime LIKE E'%\r\n\r\n<p>Order A-17</p>\r\n--=\\_segment\\_%' AS html_part
  FROM segment.messages WHERE id = :m6;
SELECT segment.send(:ann, 'receipt', '{"order": "B-2"}', '2099-06-01 12:00+00') AS m7 \gset
SELECT subject, next_attempt_at FROM segment.messages WHERE id = :m7;

-- One clock: send times and the Date header follow segment.now() (segment.clock_override),
-- here set in the past: the default send_at is due at once, an hour later is an hour later.
SET segment.clock_override = '2020-03-01 10:00:00+00';
SELECT segment.send(:bob, 'receipt', '{"order": "C-1"}') AS m8 \gset
SELECT segment.send(:bob, 'receipt', '{"order": "C-2"}', segment.now() + interval '1 hour') AS m9 \gset
SELECT subject, next_attempt_at, created_at,
       split_part(split_part(mime, E'\r\nDate: ', 2), E'\r\n', 1) AS date_header
  FROM segment.messages WHERE id IN (:m8, :m9) ORDER BY id;
RESET segment.clock_override;

-- A value with line breaks and other control characters (an address kept in
-- attrs) put into the subject: the subject is made one line (each run of them
-- becomes one space) when it is rendered, so render_for, preview and the
-- built message agree, the mail goes out and no header can be injected; the
-- body keeps its line breaks.
SELECT segment.upsert_contact('cy@example.com',
         jsonb_build_object('address', E'Main St 1 \r\n\r\nBerlin\tDE\u0001\u007f \r\nBcc: victim@example.com')) AS cy \gset
SELECT segment.create_template('shipping', 'Ships to {{address}}!', '<p>{{address}}</p>', 'Ships to {{address}}') IS NOT NULL AS created;
SELECT subject FROM segment.render_for('shipping', :cy);
SELECT subject FROM segment.preview('shipping', :cy);
SELECT segment.send(:cy, 'shipping') AS m10 \gset
SELECT subject FROM segment.messages WHERE id = :m10;
SELECT * FROM pg_temp.headers(:m10);
SELECT mime LIKE E'%\r\n\r\nShips to Main St 1=20\r\n\r\nBerlin\tDE=01=7F=20\r\nBcc: victim@example.com\r\n--%' AS text_part_keeps_lines
  FROM segment.messages WHERE id = :m10;

-- The queue by status.
SELECT segment.cancel_message(:m5) AS cancelled, segment.cancel_message(:m5) AS again;
SELECT status, messages FROM segment.queue_status;

-- Suppressions: keyed by the hash of the lower-cased address.
SELECT segment.address_hash('Bob@Example.com') = sha256('bob@example.com'::bytea) AS hash_of_lower;
SELECT segment.suppress('Bob@Example.com', 'manual', 'asked by phone');
SELECT segment.suppress('carl@example.com', 'complaint');
SELECT segment.suppress('CARL@example.com', 'manual');
SELECT address, reason, detail FROM segment.suppressions ORDER BY address;
SELECT segment.is_suppressed('bob@example.com') AS bob, segment.is_suppressed('ann@example.com') AS ann;
-- Never mailed while suppressed, not even transactional mail.
SELECT segment.send(:bob, 'receipt', '{"order": "C-3"}');
SELECT segment.unsuppress('BOB@example.com') AS removed, segment.unsuppress('bob@example.com') AS again;
SELECT segment.is_suppressed('bob@example.com') AS bob, segment.is_suppressed('carl@example.com') AS carl;

-- Bounced and complained contacts get nothing.
UPDATE segment.contacts SET status = 'bounced' WHERE id = :bob;
SELECT segment.send(:bob, 'receipt', '{"order": "C-3"}');
UPDATE segment.contacts SET status = 'complained' WHERE id = :bob;
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi');
UPDATE segment.contacts SET status = 'pending' WHERE id = :bob;

-- Errors.
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"kind": "marketing", "unsubscribe_url": "https://x.example/u"}');
SELECT segment.enqueue(:ann, 'Hi', NULL, 'Hi', '{"kind": "marketing"}');
SELECT segment.enqueue(999999, 'Hi', NULL, 'Hi');
SELECT segment.send(:bob, 'no_such_template');
SELECT segment.enqueue(:bob, E'Hi\r\nBcc: victim@example.com', NULL, 'Hi');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"headers": {"X-Tag": "a\nb"}}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"headers": {"Subject": "other"}}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"headers": {"X Bad": "v"}}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"headers": ["X-Tag"]}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"headers": {"X-Tag": 1}}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"reply_to": "Support <help@shop.example"}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"kind": "newsletter"}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"colour": "red"}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"from": 42}');
-- A Message-ID chosen by the caller (campaigns do, to put it in tracked links): kept; checked.
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"message_id": "chosen-1@shop.example"}') AS chosen \gset
SELECT message_id, mime LIKE E'%\r\nMessage-ID: <chosen-1@shop.example>\r\n%' AS in_header
  FROM segment.messages WHERE id = :chosen;
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"message_id": "chosen-1@shop.example"}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"message_id": "<x y>@shop.example"}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"message_id": "no-at-sign"}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '[]');
SELECT segment.enqueue(:ann, 'Hi', NULL, 'Hi', '{"kind": "marketing", "unsubscribe_url": "http://shop.example/u"}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"from": "Shop news@shop.example>"}');
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi', '{"from": "Shop <news@shop example>"}');
RESET segment.from_address;
SELECT segment.enqueue(:bob, 'Hi', NULL, 'Hi');
SELECT segment.send(NULL, 'receipt');
\set SHOW_CONTEXT never
SELECT segment.send(:bob, 'receipt', '["A-17"]');
\set SHOW_CONTEXT errors
SELECT count(*) AS queued_after_errors FROM segment.messages;

DROP EXTENSION segment;
