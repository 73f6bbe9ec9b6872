-- Drafts of many replies in one transaction: the server's draft writer sends every reply that
-- changed since its last write as one batch (one round trip, one commit), instead of one
-- transaction per reply per second. Each element carries write_draft's arguments without the
-- ``p_`` prefix; the result holds one boolean per element (false: that message is gone).
create function public.write_drafts(p_writes jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
    w jsonb;
    stored jsonb := '[]'::jsonb;
begin
    for w in select value from jsonb_array_elements(p_writes) loop
        stored := stored || to_jsonb(public.write_draft(
            p_session_id => w->>'session_id',
            p_message_id => w->>'message_id',
            p_keep => (w->>'keep')::integer,
            p_drop => (w->>'drop')::integer,
            p_append_text => w->>'append_text',
            p_tail => w->'tail',
            p_content_append => w->>'content_append',
            p_usage => w->'usage',
            p_cost => (w->>'cost')::double precision,
            p_now => (w->>'now')::timestamptz,
            p_status => w->>'status',
            p_error => w->>'error',
            p_step_model => w->>'step_model',
            p_step_usage => nullif(w->'step_usage', 'null'::jsonb),
            p_step_cost => (w->>'step_cost')::double precision
        ));
    end loop;
    return stored;
end;
$$;

revoke execute on function public.write_drafts(jsonb) from public, anon, authenticated;
grant execute on function public.write_drafts(jsonb) to service_role;
