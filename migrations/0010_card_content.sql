-- What a card holds (SPEC §8): the structured name, pronouns, headline, department, the
-- typed lists and an accent colour.
--
-- The lists are JSON arrays in columns of `cards`, not child tables: a card is always read
-- and written whole (the API, the public page, the vCard, an edge's copy read one row by
-- slug), the lists are short (at most 3 to 10 entries), and no query looks inside them.
-- One row per card keeps the card cache, the edges' lookups and the change sequence as
-- they are; the API's msgspec types check what goes in (app/cards/content.py).
--
-- `name` is a JSON object {prefix, given, middle, family, suffix}; NULL means "split from
-- full_name by the documented rule" (app/cards/content.py split_full_name), which is what
-- every card written before this migration gets: the rule is Python's, not SQL's, and
-- is applied as the card is read, so the vCard's N is right from now on.
ALTER TABLE cards ADD COLUMN name TEXT;
ALTER TABLE cards ADD COLUMN pronouns TEXT;
ALTER TABLE cards ADD COLUMN headline TEXT;
ALTER TABLE cards ADD COLUMN department TEXT;
ALTER TABLE cards ADD COLUMN phones TEXT NOT NULL DEFAULT '[]';
ALTER TABLE cards ADD COLUMN emails TEXT NOT NULL DEFAULT '[]';
ALTER TABLE cards ADD COLUMN addresses TEXT NOT NULL DEFAULT '[]';
ALTER TABLE cards ADD COLUMN links TEXT NOT NULL DEFAULT '[]';
ALTER TABLE cards ADD COLUMN socials TEXT NOT NULL DEFAULT '[]';
ALTER TABLE cards ADD COLUMN accent_color TEXT;

-- Every existing card carried over: its one phone became the first phone, as a mobile
-- (what the vCard said of it until now: TEL;TYPE=CELL), its email the first email, as work
-- (a card is the owner's business card), its website the first link, labelled "Website".
UPDATE cards SET
    phones = CASE WHEN phone IS NULL THEN '[]' ELSE json_array(json_object('number', phone, 'type', 'mobile')) END,
    emails = json_array(json_object('address', email, 'type', 'work')),
    links = CASE WHEN website IS NULL THEN '[]' ELSE json_array(json_object('url', website, 'label', 'Website')) END;
