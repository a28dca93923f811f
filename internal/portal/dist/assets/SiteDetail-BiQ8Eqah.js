import{j as t,T as e}from"./index-C5ChdGh-.js";function r(){return t.jsx(e,{order:2,children:"SiteDetail"})}export{r as default};
