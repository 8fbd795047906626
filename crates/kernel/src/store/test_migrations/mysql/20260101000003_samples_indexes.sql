-- A secondary index and a unique one, which a copy drops and builds again after.
create index samples_by_label on samples (label(100));
create unique index sample_tags_by_tag on sample_tags (tag, sample_seq);
