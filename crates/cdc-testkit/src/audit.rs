//! A record of every row change a source makes, kept by triggers on the source itself:
//! the check of capture that does not go through logical decoding.

/// Creates schema `audit` with `audit.log` (one row per row change: transaction, table,
/// operation, old and new row as JSON) and the trigger function `audit.record()`.
pub const AUDIT_LOG: &str = "CREATE SCHEMA audit;
CREATE TABLE audit.log (id bigserial PRIMARY KEY, xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tbl text NOT NULL, op text NOT NULL, old jsonb, new jsonb);
CREATE FUNCTION audit.record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.log (tbl, op, old, new) VALUES (TG_TABLE_NAME, TG_OP,
        CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
        CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
    RETURN NULL;
END $$;
";

/// The statement that records every row change of `public.<table>` in `audit.log`
/// (after [`AUDIT_LOG`]).
pub fn audit_trigger(table: &str) -> String {
    format!(
        "CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON public.{} \
         FOR EACH ROW EXECUTE FUNCTION audit.record();\n",
        quote_ident(table)
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_quotes_its_table() {
        assert!(audit_trigger("a\"b").contains("ON public.\"a\"\"b\" FOR EACH ROW"));
    }
}
