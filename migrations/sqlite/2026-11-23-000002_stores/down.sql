DROP TABLE items_tags;
DROP TABLE tags;
DROP TABLE items;
DROP TABLE stores;
