-- dim_date as a generated calendar, 2000-01-01 to 2099-12-31 (docs/warehouse.md). The
-- modeler adds any other date a fact refers to with the same expressions. Idempotent.
-- day_of_week is ISO (Monday 1 … Sunday 7); names are English whatever lc_time says.

CREATE OR REPLACE FUNCTION totesys_cdc.add_dates(dates date[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO dim_date (date_id, year, month, day, day_of_week, day_name, month_name, quarter)
    SELECT d,
           extract(year FROM d)::int,
           extract(month FROM d)::int,
           extract(day FROM d)::int,
           extract(isodow FROM d)::int,
           (ARRAY['Monday','Tuesday','Wednesday','Thursday','Friday','Saturday','Sunday'])[extract(isodow FROM d)::int],
           (ARRAY['January','February','March','April','May','June','July','August',
                  'September','October','November','December'])[extract(month FROM d)::int],
           extract(quarter FROM d)::int
    FROM unnest(dates) AS d
    WHERE d IS NOT NULL
    ON CONFLICT (date_id) DO NOTHING
$$;

SELECT totesys_cdc.add_dates(ARRAY(
    SELECT generate_series(date '2000-01-01', date '2099-12-31', interval '1 day')::date));
